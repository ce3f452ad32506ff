// S3Client: the S3 REST calls a publish target needs (objects, listings,
// batch deletes, multipart uploads) over libcurl, which signs with SigV4, and
// tinyxml2 for the XML bodies. It knows keys and bytes, not versions: the
// store logic lives elsewhere. Errors name the s3:// target and tell the
// operator what to check; no message ever carries a secret.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace wd {

// "s3://bucket[/prefix]". The prefix has no leading or trailing '/'.
struct S3Url {
  std::string bucket, prefix;
};
bool IsS3Url(const std::string& s);
// Strict: a valid S3 bucket name (3-63 of [a-z0-9.-], no "..", not an IP
// address) and a prefix without empty, "." or ".." segments or control
// characters; one trailing '/' is allowed and dropped. Errors are kConfig.
Result<S3Url> ParseS3Url(const std::string& url);

struct S3Credentials {
  std::string access_key, secret_key, session_token;
};

struct S3Settings {
  // "http://127.0.0.1:7480"; empty: AWS_ENDPOINT_URL, else
  // https://s3.<region>.amazonaws.com.
  std::string endpoint;
  std::string region;      // empty: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1
  bool path_style = true;  // false: virtual-hosted (bucket.host)
  // An AWS shared credentials INI file. Empty: AWS_ACCESS_KEY_ID +
  // AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else
  // $CREDENTIALS_DIRECTORY/aws-credentials (systemd LoadCredential=), else
  // AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials.
  std::string credentials_file;
  std::string profile;  // empty: AWS_PROFILE, else "default"
  long connect_timeout_ms = 5000;
  long request_timeout_ms = 120000;  // a whole request, body included
  // Attempts per request: 5xx, 429, RequestTimeout/SlowDown and network
  // errors are retried with exponential backoff and jitter; other 4xx are not.
  int max_attempts = 5;
  int64_t first_backoff_ms = 200;
};

// Endpoint and region filled in from the environment as AWS tools do
// (explicit values win); the endpoint is checked (http or https, no path).
Result<S3Settings> ResolveSettings(const S3Settings& s);
// Credentials in the order described at S3Settings::credentials_file; an
// explicit credentials_file or profile skips the environment's keys. The
// error names what is missing and where it looked.
Result<S3Credentials> ResolveCredentials(const S3Settings& s);

struct S3PutOptions {
  std::string content_type;  // empty: application/octet-stream
  std::string cache_control;
  std::string sha256_hex;      // of the body; required: the server verifies it
  bool if_none_match = false;  // If-None-Match: * (create only)
  std::string if_match;        // ETag (replace only that version)
};
struct S3PutResult {
  bool precondition_failed = false;  // HTTP 412: nothing was written
  std::string etag;                  // as the server sends it, quotes included
};
struct S3ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;
};
struct S3ListResult {
  std::vector<S3ObjectInfo> objects;
  std::vector<std::string> common_prefixes;
};
struct S3Upload {
  std::string key, upload_id;
};

// Thread-safe: every call may run on any thread concurrently. Connections are
// kept alive in a pool of curl handles.
class S3Client {
 public:
  static Result<std::unique_ptr<S3Client>> Create(const S3Settings& settings,
                                                  const std::string& bucket);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // HEAD of the bucket: OK when it exists and the credentials work, else an
  // error saying what to check. For a start-up check.
  Status Check();
  Result<S3PutResult> Put(const std::string& key, std::string_view body, const S3PutOptions& o);
  // nullopt: no such key. A HEAD answer has no body, so a missing bucket
  // looks the same here: Check() tells them apart.
  Result<std::optional<S3ObjectInfo>> Head(const std::string& key);
  // The whole object, at most max_bytes (more is an error); nullopt: no such key.
  Result<std::optional<std::string>> Get(const std::string& key, uint64_t max_bytes,
                                         std::string* etag = nullptr);
  // Streams the object to `sink` in pieces without holding it whole. A
  // transfer that fails midway resumes at the byte it reached (Range, If-Match
  // on the first ETag), so the sink sees every byte exactly once. A missing
  // key is an error. A non-OK status from the sink stops and is returned.
  using Sink = std::function<Status(const uint8_t* data, size_t n)>;
  Status GetToSink(const std::string& key, const Sink& sink, std::string* etag = nullptr);
  // ListObjectsV2 over every page (max_keys per request).
  Result<S3ListResult> List(const std::string& prefix, const std::string& delimiter,
                            int max_keys = 1000);
  Status Delete(const std::string& key);  // a missing key is not an error
  // DeleteObjects in batches of 1000; keys that failed are named in the error.
  Status DeleteMany(const std::vector<std::string>& keys);

  // Multipart upload, for big objects: parts 1..N of at least 5 MiB but the
  // last. Conditions (if_none_match, if_match) are not supported here.
  Result<std::string> CreateMultipart(const std::string& key, const S3PutOptions& o);
  Result<std::string> UploadPart(const std::string& key, const std::string& upload_id, int part,
                                 std::string_view body, const std::string& sha256_hex);
  // part_etags[i] is part i+1's. The ETag comes from a HEAD when the server's
  // answer has none (RGW 16).
  Result<S3PutResult> CompleteMultipart(const std::string& key, const std::string& upload_id,
                                        const std::vector<std::string>& part_etags);
  Status AbortMultipart(const std::string& key, const std::string& upload_id);  // gone is OK
  Result<std::vector<S3Upload>> ListMultipartUploads(const std::string& prefix);

  // "s3://bucket at http://host:port (region r, path-style)": no secrets.
  std::string Describe() const;
  struct Stats {
    uint64_t bytes_uploaded = 0, requests = 0, retries = 0;
    std::string last_error;
  };
  Stats stats() const;

  struct Impl;

 private:
  explicit S3Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- Pure helpers (exposed for tests) ----

// RFC 3986 encoding as SigV4 wants it: A-Za-z0-9-_.~ kept, every other byte
// %XX (uppercase). The path form keeps '/' too.
std::string UriEncode(std::string_view s);
std::string UriEncodeKey(std::string_view key);
// "k1=v1&k2=v2", sorted by key then value, both encoded; "k=" for no value.
// The URL's query must be exactly this: curl 7.88 signs it as given.
std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params);

// Whether a request is worth repeating: a network error (curl_code != 0) other
// than a local one, HTTP 5xx, 429, 408, or S3's RequestTimeout/SlowDown.
bool IsRetryable(long http_status, int curl_code, std::string_view s3_code = {});
// Delay before attempt `attempt`+1 (attempt >= 1): first * 2^(attempt-1),
// capped at 20 s, then scaled into [1/2, 1] of that by `jitter` in [0, 1).
int64_t BackoffMs(int attempt, int64_t first_ms, double jitter);

// XML bodies. Each returns a kEnvironment error naming what was wrong with
// the body when it is not the document expected.
struct S3ErrorBody {
  std::string code, message;
};
S3ErrorBody ParseS3Error(std::string_view body);  // empty fields when not an <Error>
struct S3ListPage {
  S3ListResult result;
  bool truncated = false;
  std::string next_token;
};
Result<S3ListPage> ParseListBucketResult(std::string_view body);
Result<std::string> ParseInitiateMultipartUploadResult(std::string_view body);  // upload id
Result<std::string> ParseCompleteMultipartUploadResult(std::string_view body);  // etag, may be ""
struct S3DeleteError {
  std::string key, code, message;
};
Result<std::vector<S3DeleteError>> ParseDeleteResult(std::string_view body);
struct S3UploadsPage {
  std::vector<S3Upload> uploads;
  bool truncated = false;
  std::string next_key_marker, next_upload_id_marker;
};
Result<S3UploadsPage> ParseListMultipartUploadsResult(std::string_view body);
// The request bodies, built with tinyxml2 (keys escaped).
std::string DeleteRequestXml(const std::vector<std::string>& keys);
std::string CompleteMultipartXml(const std::vector<std::string>& part_etags);

}  // namespace wd
