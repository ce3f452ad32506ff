#include "core/s3_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <tinyxml2.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/sha256.h"

// How libcurl 7.88 (Debian 12) signs, and what this file does about it
// (lib/http_aws_sigv4.c at curl-7_88_1):
// - The payload hash is the value of a user-supplied x-amz-content-sha256
//   header (since 7.87); without one curl hashes POSTFIELDS, or the empty
//   string for an upload. Every request here sends the header, so the server
//   checks our bytes against it (a mismatch is XAmzContentSHA256Mismatch).
// - Every user header is signed, a valueless "Name:" (curl's "remove this
//   header") included: "Expect:" makes the signature wrong (fixed in 8.3).
//   Before 8.3 we keep curl's "Expect: 100-continue" (unsigned) and do not
//   wait for the 100; from 8.3 on we remove it.
// - The query string and path are signed exactly as given (canonicalised
//   from 8.3 and 8.9): URLs here are built already canonical
//   (CanonicalQuery, UriEncodeKey) and CURLOPT_PATH_AS_IS keeps "." segments.
// - Headers are sorted by strcmp of "name:value" (fixed in 8.10): no two
//   headers sent here have names where one is a prefix of the other.

namespace wd {

namespace {

constexpr uint64_t kMaxDocBytes = 64ull << 20;   // XML answers: listings, results
constexpr uint64_t kMaxErrorBytes = 1ull << 20;  // error bodies kept for the message
constexpr size_t kDeleteBatch = 1000;            // DeleteObjects' limit
constexpr size_t kMaxPooledHandles = 64;

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

std::string Encode(std::string_view s, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string BucketNameProblem(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return "must be 3 to 63 characters";
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
      return "may only hold lowercase letters, digits, '.' and '-'";
    }
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(b.front()) || !alnum(b.back())) return "must start and end with a letter or digit";
  if (b.find("..") != std::string::npos) return "must not contain \"..\"";
  if (b.rfind("xn--", 0) == 0) return "must not start with \"xn--\"";
  if (std::all_of(b.begin(), b.end(), [](char c) { return c == '.' || (c >= '0' && c <= '9'); })) {
    return "must not be an IP address";
  }
  return "";
}

// ---- Credentials files ----

// Reads a small text file. nullopt with *err = ENOENT when it is absent.
std::optional<std::string> ReadSmallFile(const std::string& path, int* err) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *err = errno;
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() < (1u << 20)) {
    out.append(buf, n);
  }
  bool bad = std::ferror(f) != 0;
  int e = errno;
  std::fclose(f);
  if (bad) {
    *err = e ? e : EIO;
    return std::nullopt;
  }
  return out;
}

using IniSections = std::map<std::string, std::map<std::string, std::string>>;

IniSections ParseIni(const std::string& text) {
  IniSections out;
  std::string section;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = Trim(std::string_view(text).substr(pos, nl - pos));
    pos = nl + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(std::string_view(line).substr(1, line.size() - 2));
      if (section.rfind("profile ", 0) == 0) section = Trim(section.substr(8));
      out[section];
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos || section.empty()) continue;
    out[section][Lower(Trim(std::string_view(line).substr(0, eq)))] =
        Trim(std::string_view(line).substr(eq + 1));
  }
  return out;
}

Result<S3Credentials> CredentialsFromIni(const std::string& path, const std::string& text,
                                         const std::string& profile) {
  IniSections ini = ParseIni(text);
  auto it = ini.find(profile);
  if (it == ini.end()) {
    std::string names;
    for (const auto& [name, _] : ini) names += (names.empty() ? "" : ", ") + name;
    return Status::Config(path + ": no profile [" + profile + "]" +
                          (names.empty() ? " (the file has none)" : " (it has: " + names + ")"));
  }
  const auto& kv = it->second;
  auto get = [&](const char* k) {
    auto f = kv.find(k);
    return f == kv.end() ? std::string() : f->second;
  };
  S3Credentials c{get("aws_access_key_id"), get("aws_secret_access_key"), get("aws_session_token")};
  for (auto [value, name] : {std::pair{&c.access_key, "aws_access_key_id"},
                             std::pair{&c.secret_key, "aws_secret_access_key"}}) {
    if (value->empty()) {
      return Status::Config(path + ": profile [" + profile + "] has no " + name);
    }
  }
  return c;
}

// ---- XML ----

std::string Text(const tinyxml2::XMLElement* parent, const char* name) {
  const tinyxml2::XMLElement* e = parent ? parent->FirstChildElement(name) : nullptr;
  const char* t = e ? e->GetText() : nullptr;
  return t ? std::string(t) : std::string();
}

// The root element, which must be `expected`. An <Error> document becomes
// its code and message.
Result<const tinyxml2::XMLElement*> Root(tinyxml2::XMLDocument& doc, std::string_view body,
                                         const char* expected) {
  if (doc.Parse(body.data(), body.size()) != tinyxml2::XML_SUCCESS) {
    return Status::Environment(std::string("unparseable ") + expected + " answer (" +
                               doc.ErrorStr() + ")");
  }
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (root && std::strcmp(root->Name(), "Error") == 0) {
    std::string code = Text(root, "Code"), message = Text(root, "Message");
    return Status::Environment("error answer instead of " + std::string(expected) + ": " + code +
                               (message.empty() ? "" : ": " + message));
  }
  if (!root || std::strcmp(root->Name(), expected) != 0) {
    return Status::Environment(std::string("answer is not a ") + expected + " document (root <" +
                               (root ? root->Name() : "") + ">)");
  }
  return root;
}

Result<uint64_t> ParseU64(const std::string& s, const char* what) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    return Status::Environment(std::string("bad ") + what + " '" + s + "' in listing");
  }
  return v;
}

std::string FinishPrinter(tinyxml2::XMLPrinter& p) {
  return std::string(p.CStr(), p.CStrSize() - 1);
}

// ---- Digests ----

std::string Md5(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out, &n, EVP_md5(), nullptr) != 1) {
    std::fprintf(stderr, "weightdrop: OpenSSL MD5 failed\n");
    std::abort();
  }
  return std::string(reinterpret_cast<char*>(out), n);
}

std::string Base64(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Hex(const std::string& raw) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// ---- curl ----

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// curl before 8.3 signs a valueless "Expect:" (see the top of this file).
bool CurlCanRemoveExpect() { return curl_version_info(CURLVERSION_NOW)->version_num >= 0x080300; }

struct Request {
  const char* method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string key;             // empty: the bucket itself
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::string> headers;  // "Name: value"
  std::string_view body;
  std::string body_sha256;  // empty: the SHA-256 of an empty body
  uint64_t max_body = kMaxDocBytes;
  // GET: 2xx bodies go here instead of into Response::body.
  const std::function<Status(const uint8_t*, size_t)>* sink = nullptr;
  bool require_partial = false;  // a Range request: a 200 must not reach the sink
};

struct Response {
  long status = 0;
  int curl_code = 0;
  std::string curl_error;
  std::string body;
  std::string etag;
  std::optional<uint64_t> content_length;
  bool too_big = false;
  bool range_ignored = false;
  Status sink_status;
  uint64_t sink_bytes = 0;
  // Some earlier attempt failed in a way that may have taken effect (a
  // network error or 5xx): a 412 or NoSuchUpload now may be our own doing.
  bool ambiguous = false;
  int attempts = 0;
  std::string S3Code() const { return ParseS3Error(body).code; }
};

struct Transfer {
  CURL* handle;
  const Request* req;
  Response* resp;
  size_t read_pos = 0;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a 100 Continue)
    t->resp->etag.clear();
    t->resp->content_length.reset();
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name = Lower(std::string(line.substr(0, colon)));
  std::string value = Trim(line.substr(colon + 1));
  if (name == "etag") {
    t->resp->etag = value;
  } else if (name == "content-length") {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec == std::errc() && p == value.data() + value.size()) t->resp->content_length = v;
  }
  return size * n;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &status);
  bool success = status >= 200 && status < 300;
  if (success && t->req->sink) {
    if (t->req->require_partial && status != 206) {
      t->resp->range_ignored = true;
      return 0;
    }
    Status s = (*t->req->sink)(reinterpret_cast<const uint8_t*>(data), len);
    if (!s.ok()) {
      t->resp->sink_status = std::move(s);
      return 0;  // CURLE_WRITE_ERROR
    }
    t->resp->sink_bytes += len;
    return len;
  }
  uint64_t limit = success ? t->req->max_body : kMaxErrorBytes;
  if (t->resp->body.size() + len > limit) {
    if (success) {
      t->resp->too_big = true;
      return 0;
    }
    return len;  // an error body: keep its start, drop the rest
  }
  t->resp->body.append(data, len);
  return len;
}

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = std::min(size * n, t->req->body.size() - t->read_pos);
  std::memcpy(buf, t->req->body.data() + t->read_pos, len);
  t->read_pos += len;
  return len;
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->req->body.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->read_pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

std::string Hint(const std::string& code, long status, const std::string& bucket,
                 const std::string& endpoint, const std::string& region) {
  if (code == "InvalidAccessKeyId") return "check the access key id for " + endpoint;
  if (code == "SignatureDoesNotMatch") {
    return "check the secret key, and the region (" + region + ") for " + endpoint;
  }
  if (code == "RequestTimeTooSkewed") return "check this machine's clock";
  if (code == "NoSuchBucket") {
    return "check the bucket name '" + bucket + "' and the endpoint " + endpoint;
  }
  if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || status == 301) {
    return "check the region (" + region + ") and the endpoint " + endpoint;
  }
  if (code == "AccessDenied" || status == 401 || status == 403) {
    return "check the credentials and that they may use bucket '" + bucket + "' at " + endpoint;
  }
  return "";
}

}  // namespace

// ---- Pure helpers ----

std::string UriEncode(std::string_view s) { return Encode(s, false); }
std::string UriEncodeKey(std::string_view key) { return Encode(key, true); }

std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(params.size());
  for (auto& [k, v] : params) enc.emplace_back(UriEncode(k), UriEncode(v));
  std::sort(enc.begin(), enc.end());  // by encoded key, then value (byte order)
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

bool IsRetryable(long http_status, int curl_code, std::string_view s3_code) {
  if (curl_code != 0) {
    switch (curl_code) {
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_PARTIAL_FILE:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
      case CURLE_HTTP3:
        return true;
      default:
        return false;  // a bad URL, TLS verification, our own callback's abort...
    }
  }
  if (http_status >= 500 || http_status == 429 || http_status == 408) return true;
  return s3_code == "RequestTimeout" || s3_code == "SlowDown" ||
         s3_code == "ConditionalRequestConflict" || s3_code == "InternalError";
}

int64_t BackoffMs(int attempt, int64_t first_ms, double jitter) {
  constexpr int64_t kCapMs = 20000;
  int64_t d = std::max<int64_t>(first_ms, 1);
  for (int i = 1; i < attempt && d < kCapMs; ++i) d *= 2;
  d = std::min(d, kCapMs);
  jitter = std::clamp(jitter, 0.0, 1.0);
  return d / 2 + static_cast<int64_t>(static_cast<double>(d - d / 2) * jitter);
}

bool IsS3Url(const std::string& s) { return s.rfind("s3://", 0) == 0; }

Result<S3Url> ParseS3Url(const std::string& url) {
  auto bad = [&](const std::string& why) { return Status::Config("'" + url + "': " + why); };
  if (!IsS3Url(url)) return bad("not an s3:// URL");
  std::string rest = url.substr(5);
  size_t slash = rest.find('/');
  S3Url out;
  out.bucket = rest.substr(0, slash);
  if (out.bucket.empty()) return bad("no bucket name");
  std::string problem = BucketNameProblem(out.bucket);
  if (!problem.empty()) return bad("bucket name '" + out.bucket + "' " + problem);
  if (slash == std::string::npos) return out;
  std::string path = rest.substr(slash + 1);
  if (!path.empty() && path.back() == '/') path.pop_back();
  if (path.empty()) return out;
  if (HasControl(path)) return bad("control characters in the prefix");
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string_view seg = std::string_view(path).substr(pos, end - pos);
    if (seg.empty()) return bad("empty path segment in the prefix");
    if (seg == "." || seg == "..") return bad("'" + std::string(seg) + "' segment in the prefix");
    pos = end + 1;
  }
  if (path.size() > 900) return bad("prefix longer than 900 bytes");
  out.prefix = path;
  return out;
}

Result<S3Settings> ResolveSettings(const S3Settings& in) {
  S3Settings s = in;
  if (s.region.empty()) s.region = Getenv("AWS_REGION");
  if (s.region.empty()) s.region = Getenv("AWS_DEFAULT_REGION");
  if (s.region.empty()) s.region = "us-east-1";
  if (s.region.size() > 64 || !std::all_of(s.region.begin(), s.region.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      })) {
    return Status::Config("S3 region '" + s.region + "' is not a region name");
  }
  if (s.endpoint.empty()) s.endpoint = Getenv("AWS_ENDPOINT_URL_S3");
  if (s.endpoint.empty()) s.endpoint = Getenv("AWS_ENDPOINT_URL");
  if (s.endpoint.empty()) s.endpoint = "https://s3." + s.region + ".amazonaws.com";
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  auto bad = [&](const std::string& why) {
    return Status::Config("S3 endpoint '" + s.endpoint + "': " + why);
  };
  size_t host_at;
  if (s.endpoint.rfind("http://", 0) == 0) {
    host_at = 7;
  } else if (s.endpoint.rfind("https://", 0) == 0) {
    host_at = 8;
  } else {
    return bad("must start with http:// or https://");
  }
  std::string host = s.endpoint.substr(host_at);
  if (host.empty() || host[0] == ':') return bad("no host");
  if (host.find_first_of("/?#@ \t") != std::string::npos || HasControl(host)) {
    return bad("must be scheme://host[:port] only (no path, query or user)");
  }
  if (s.max_attempts < 1) return Status::Config("S3 max_attempts must be at least 1");
  if (s.connect_timeout_ms <= 0 || s.request_timeout_ms <= 0) {
    return Status::Config("S3 timeouts must be positive");
  }
  return s;
}

Result<S3Credentials> ResolveCredentials(const S3Settings& s) {
  const bool explicit_choice = !s.credentials_file.empty() || !s.profile.empty();
  if (!explicit_choice) {
    S3Credentials c{Getenv("AWS_ACCESS_KEY_ID"), Getenv("AWS_SECRET_ACCESS_KEY"),
                    Getenv("AWS_SESSION_TOKEN")};
    if (!c.access_key.empty() && !c.secret_key.empty()) return c;
    if (!c.access_key.empty()) {
      return Status::Config("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    }
    if (!c.secret_key.empty()) {
      return Status::Config("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    }
  }
  std::string profile = s.profile;
  if (profile.empty()) profile = Getenv("AWS_PROFILE");
  if (profile.empty()) profile = "default";

  std::vector<std::string> candidates;
  if (!s.credentials_file.empty()) {
    candidates.push_back(s.credentials_file);
  } else {
    if (std::string dir = Getenv("CREDENTIALS_DIRECTORY"); !dir.empty()) {
      candidates.push_back(dir + "/aws-credentials");
    }
    if (std::string f = Getenv("AWS_SHARED_CREDENTIALS_FILE"); !f.empty()) {
      candidates.push_back(f);
    } else if (std::string home = Getenv("HOME"); !home.empty()) {
      candidates.push_back(home + "/.aws/credentials");
    }
  }
  for (const std::string& path : candidates) {
    int err = 0;
    std::optional<std::string> text = ReadSmallFile(path, &err);
    if (text) return CredentialsFromIni(path, *text, profile);
    if (err == ENOENT && s.credentials_file.empty()) continue;
    if (err == ENOENT) return Status::Config("S3 credentials file " + path + " does not exist");
    return ErrnoStatus("S3 credentials file " + path, err);
  }
  std::string looked;
  for (const std::string& p : candidates) looked += (looked.empty() ? "" : ", ") + p;
  return Status::Config(
      "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile [" +
      profile + "] in a credentials file" +
      (looked.empty() ? std::string(" (HOME is not set)") : " (none found: " + looked + ")"));
}

// ---- XML ----

S3ErrorBody ParseS3Error(std::string_view body) {
  tinyxml2::XMLDocument doc;
  if (body.empty() || doc.Parse(body.data(), body.size()) != tinyxml2::XML_SUCCESS) return {};
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (!root || std::strcmp(root->Name(), "Error") != 0) return {};
  return {Text(root, "Code"), Text(root, "Message")};
}

Result<S3ListPage> ParseListBucketResult(std::string_view body) {
  tinyxml2::XMLDocument doc;
  WD_ASSIGN_OR_RETURN(const tinyxml2::XMLElement* root, Root(doc, body, "ListBucketResult"));
  S3ListPage page;
  for (auto* e = root->FirstChildElement("Contents"); e; e = e->NextSiblingElement("Contents")) {
    S3ObjectInfo info;
    info.key = Text(e, "Key");
    if (info.key.empty()) return Status::Environment("listing entry without a <Key>");
    WD_ASSIGN_OR_RETURN(info.size, ParseU64(Text(e, "Size"), "<Size>"));
    info.etag = Text(e, "ETag");
    page.result.objects.push_back(std::move(info));
  }
  for (auto* e = root->FirstChildElement("CommonPrefixes"); e;
       e = e->NextSiblingElement("CommonPrefixes")) {
    page.result.common_prefixes.push_back(Text(e, "Prefix"));
  }
  page.truncated = Text(root, "IsTruncated") == "true";
  page.next_token = Text(root, "NextContinuationToken");
  if (page.truncated && page.next_token.empty()) {
    return Status::Environment("truncated listing without a <NextContinuationToken>");
  }
  return page;
}

Result<std::string> ParseInitiateMultipartUploadResult(std::string_view body) {
  tinyxml2::XMLDocument doc;
  WD_ASSIGN_OR_RETURN(const tinyxml2::XMLElement* root,
                      Root(doc, body, "InitiateMultipartUploadResult"));
  std::string id = Text(root, "UploadId");
  if (id.empty()) return Status::Environment("InitiateMultipartUploadResult without an UploadId");
  return id;
}

Result<std::string> ParseCompleteMultipartUploadResult(std::string_view body) {
  tinyxml2::XMLDocument doc;
  WD_ASSIGN_OR_RETURN(const tinyxml2::XMLElement* root,
                      Root(doc, body, "CompleteMultipartUploadResult"));
  return Text(root, "ETag");
}

Result<std::vector<S3DeleteError>> ParseDeleteResult(std::string_view body) {
  tinyxml2::XMLDocument doc;
  WD_ASSIGN_OR_RETURN(const tinyxml2::XMLElement* root, Root(doc, body, "DeleteResult"));
  std::vector<S3DeleteError> out;
  for (auto* e = root->FirstChildElement("Error"); e; e = e->NextSiblingElement("Error")) {
    out.push_back({Text(e, "Key"), Text(e, "Code"), Text(e, "Message")});
  }
  return out;
}

Result<S3UploadsPage> ParseListMultipartUploadsResult(std::string_view body) {
  tinyxml2::XMLDocument doc;
  WD_ASSIGN_OR_RETURN(const tinyxml2::XMLElement* root,
                      Root(doc, body, "ListMultipartUploadsResult"));
  S3UploadsPage page;
  for (auto* e = root->FirstChildElement("Upload"); e; e = e->NextSiblingElement("Upload")) {
    page.uploads.push_back({Text(e, "Key"), Text(e, "UploadId")});
  }
  page.truncated = Text(root, "IsTruncated") == "true";
  page.next_key_marker = Text(root, "NextKeyMarker");
  page.next_upload_id_marker = Text(root, "NextUploadIdMarker");
  if (page.truncated && page.next_key_marker.empty() && page.next_upload_id_marker.empty()) {
    return Status::Environment("truncated upload listing without a next marker");
  }
  return page;
}

std::string DeleteRequestXml(const std::vector<std::string>& keys) {
  tinyxml2::XMLPrinter p(nullptr, /*compact=*/true);
  p.PushHeader(false, true);
  p.OpenElement("Delete", true);
  p.OpenElement("Quiet", true);
  p.PushText("true");
  p.CloseElement(true);
  for (const std::string& k : keys) {
    p.OpenElement("Object", true);
    p.OpenElement("Key", true);
    p.PushText(k.c_str());
    p.CloseElement(true);
    p.CloseElement(true);
  }
  p.CloseElement(true);
  return FinishPrinter(p);
}

std::string CompleteMultipartXml(const std::vector<std::string>& part_etags) {
  tinyxml2::XMLPrinter p(nullptr, /*compact=*/true);
  p.PushHeader(false, true);
  p.OpenElement("CompleteMultipartUpload", true);
  for (size_t i = 0; i < part_etags.size(); ++i) {
    p.OpenElement("Part", true);
    p.OpenElement("PartNumber", true);
    p.PushText(static_cast<int64_t>(i + 1));
    p.CloseElement(true);
    p.OpenElement("ETag", true);
    p.PushText(part_etags[i].c_str());
    p.CloseElement(true);
    p.CloseElement(true);
  }
  p.CloseElement(true);
  return FinishPrinter(p);
}

// ---- The client ----

struct S3Client::Impl {
  S3Settings settings;  // resolved
  S3Credentials creds;
  std::string bucket;
  std::string base_url;  // ".../bucket" (path-style) or "scheme://bucket.host"
  std::string sigv4;     // "aws:amz:<region>:s3"
  bool remove_expect = CurlCanRemoveExpect();

  std::mutex pool_mu;
  std::vector<CURL*> pool;

  std::atomic<uint64_t> bytes_uploaded{0}, requests{0}, retries{0};
  mutable std::mutex error_mu;
  std::string last_error;

  ~Impl() {
    for (CURL* h : pool) curl_easy_cleanup(h);
  }

  std::string Target(const std::string& key) const {
    return "s3://" + bucket + (key.empty() ? "" : "/" + key);
  }

  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!pool.empty()) {
        CURL* h = pool.back();
        pool.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }
  void Release(CURL* h) {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (pool.size() < kMaxPooledHandles) {
      pool.push_back(h);
    } else {
      curl_easy_cleanup(h);
    }
  }

  Status Fail(Status s) {
    std::lock_guard<std::mutex> lock(error_mu);
    last_error = s.message();
    return s;
  }

  std::string Url(const Request& req) const {
    std::string url = base_url + "/" + UriEncodeKey(req.key);
    if (!req.query.empty()) url += "?" + CanonicalQuery(req.query);
    return url;
  }

  // One HTTP exchange. Never fails: the outcome is in the Response.
  void Once(const Request& req, Response* resp) {
    CURL* h = Acquire();
    if (!h) {
      resp->curl_code = CURLE_OUT_OF_MEMORY;
      resp->curl_error = "curl_easy_init failed";
      return;
    }
    curl_easy_reset(h);
    Transfer t{h, &req, resp};
    char errbuf[CURL_ERROR_SIZE] = {0};
    const std::string url = Url(req);
    curl_slist* headers = nullptr;
    std::vector<std::string> lines = req.headers;
    lines.push_back("x-amz-content-sha256: " +
                    (req.body_sha256.empty() ? Sha256Hex("") : req.body_sha256));
    if (!creds.session_token.empty()) {
      lines.push_back("x-amz-security-token: " + creds.session_token);
    }
    const bool has_body =
        std::strcmp(req.method, "PUT") == 0 || std::strcmp(req.method, "POST") == 0;
    if (has_body && remove_expect) lines.push_back("Expect:");
    for (const std::string& l : lines) headers = curl_slist_append(headers, l.c_str());

    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, settings.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, settings.request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_AWS_SIGV4));
    curl_easy_setopt(h, CURLOPT_USERNAME, creds.access_key.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, creds.secret_key.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    if (std::strcmp(req.method, "HEAD") == 0) {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (std::strcmp(req.method, "PUT") == 0) {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      if (!remove_expect) curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    } else if (std::strcmp(req.method, "POST") == 0) {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.empty() ? "" : req.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      if (!remove_expect) curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    } else if (std::strcmp(req.method, "DELETE") == 0) {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }

    CURLcode rc = curl_easy_perform(h);
    requests.fetch_add(1, std::memory_order_relaxed);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->curl_code = rc;
    if (rc != CURLE_OK) {
      resp->curl_error = errbuf[0] ? std::string(errbuf) : curl_easy_strerror(rc);
      while (!resp->curl_error.empty() && resp->curl_error.back() == '\n') {
        resp->curl_error.pop_back();
      }
    }
    // Secrets must not outlive the call in a pooled handle's options.
    curl_easy_setopt(h, CURLOPT_USERNAME, "");
    curl_easy_setopt(h, CURLOPT_PASSWORD, "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_slist_free_all(headers);
    Release(h);
  }

  void Sleep(int attempt) {
    thread_local std::mt19937_64 rng(std::random_device{}());
    double jitter = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    retries.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(BackoffMs(attempt, settings.first_backoff_ms, jitter)));
  }

  // Once, repeated while the outcome is retryable. Not for sinks (their
  // bytes cannot be taken back): GetToSink resumes on its own.
  Response Execute(const Request& req) {
    Response resp;
    bool ambiguous = false;
    for (int attempt = 1;; ++attempt) {
      resp = Response();
      resp.ambiguous = ambiguous;
      resp.attempts = attempt;
      Once(req, &resp);
      bool retry = !resp.too_big && resp.sink_status.ok() &&
                   IsRetryable(resp.status, resp.curl_code, resp.S3Code());
      if (!retry || attempt >= settings.max_attempts) break;
      ambiguous = ambiguous || resp.curl_code != 0 || resp.status >= 500;
      Sleep(attempt);
    }
    return resp;
  }

  // The error for a finished exchange that did not succeed.
  Status Error(const std::string& target, const Response& r) {
    if (!r.sink_status.ok()) return r.sink_status;
    if (r.curl_code != 0) {
      return Fail(Status::Environment(
          target + ": cannot reach " + settings.endpoint + ": " + r.curl_error + " (curl error " +
          std::to_string(r.curl_code) + ", " + std::to_string(r.attempts) +
          (r.attempts == 1 ? " attempt" : " attempts") + "); check the endpoint and the network"));
    }
    S3ErrorBody e = ParseS3Error(r.body);
    if (e.code.empty()) {
      if (r.status == 403) e.code = "Forbidden";
      if (r.status == 404) e.code = "NotFound";
    }
    std::string msg = target + ": HTTP " + std::to_string(r.status);
    if (!e.code.empty()) msg += " " + e.code;
    if (!e.message.empty()) msg += ": " + e.message;
    std::string hint = Hint(e.code, r.status, bucket, settings.endpoint, settings.region);
    if (!hint.empty()) msg += " (" + hint + ")";
    if (r.attempts > 1) msg += " after " + std::to_string(r.attempts) + " attempts";
    return Fail(Status::Environment(msg));
  }

  Status CheckKey(const std::string& key, const char* what) const {
    if (key.empty() || key.size() > 1024 || key.find('\0') != std::string::npos) {
      return Status::Usage(std::string("S3 ") + what + ": bad key '" + key +
                           "' (1 to 1024 bytes, no NUL)");
    }
    return Status::Ok();
  }

  Status PutHeaders(const S3PutOptions& o, const std::string& target, Request* req) const {
    for (const std::string* v : {&o.content_type, &o.cache_control, &o.if_match}) {
      if (v->find_first_of("\r\n") != std::string::npos) {
        return Status::Usage(target + ": line break in a header value");
      }
    }
    req->headers.push_back("Content-Type: " +
                           (o.content_type.empty() ? "application/octet-stream" : o.content_type));
    if (!o.cache_control.empty()) req->headers.push_back("Cache-Control: " + o.cache_control);
    return Status::Ok();
  }
};

S3Client::S3Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Client::~S3Client() = default;

Result<std::unique_ptr<S3Client>> S3Client::Create(const S3Settings& settings,
                                                   const std::string& bucket) {
  std::string problem = BucketNameProblem(bucket);
  if (!problem.empty()) return Status::Config("S3 bucket name '" + bucket + "' " + problem);
  WD_ASSIGN_OR_RETURN(S3Settings resolved, ResolveSettings(settings));
  WD_ASSIGN_OR_RETURN(S3Credentials creds, ResolveCredentials(resolved));
  GlobalInit();
  auto impl = std::make_unique<Impl>();
  impl->settings = resolved;
  impl->creds = std::move(creds);
  impl->bucket = bucket;
  impl->sigv4 = "aws:amz:" + resolved.region + ":s3";
  if (resolved.path_style) {
    impl->base_url = resolved.endpoint + "/" + bucket;
  } else {
    size_t host_at = resolved.endpoint.find("://") + 3;
    impl->base_url =
        resolved.endpoint.substr(0, host_at) + bucket + "." + resolved.endpoint.substr(host_at);
  }
  return std::unique_ptr<S3Client>(new S3Client(std::move(impl)));
}

std::string S3Client::Describe() const {
  return "s3://" + impl_->bucket + " at " + impl_->settings.endpoint + " (region " +
         impl_->settings.region + ", " +
         (impl_->settings.path_style ? "path-style" : "virtual-hosted") + ")";
}

S3Client::Stats S3Client::stats() const {
  Stats s;
  s.bytes_uploaded = impl_->bytes_uploaded.load();
  s.requests = impl_->requests.load();
  s.retries = impl_->retries.load();
  std::lock_guard<std::mutex> lock(impl_->error_mu);
  s.last_error = impl_->last_error;
  return s;
}

Status S3Client::Check() {
  Request req;
  req.method = "HEAD";
  Response r = impl_->Execute(req);
  if (r.curl_code == 0 && r.status == 200) return Status::Ok();
  if (r.curl_code == 0 && r.status == 404) {
    return impl_->Fail(Status::Environment(
        impl_->Target("") + ": HTTP 404 NoSuchBucket (" +
        Hint("NoSuchBucket", 404, impl_->bucket, impl_->settings.endpoint, impl_->settings.region) +
        ")"));
  }
  return impl_->Error(impl_->Target(""), r);
}

Result<S3PutResult> S3Client::Put(const std::string& key, std::string_view body,
                                  const S3PutOptions& o) {
  const std::string target = impl_->Target(key);
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "Put"));
  if (!IsHex64(o.sha256_hex)) {
    return Status::Usage(target + ": Put needs the body's SHA-256 (64 lowercase hex digits)");
  }
  Request req;
  req.method = "PUT";
  req.key = key;
  req.body = body;
  req.body_sha256 = o.sha256_hex;
  WD_RETURN_IF_ERROR(impl_->PutHeaders(o, target, &req));
  if (o.if_none_match) req.headers.push_back("If-None-Match: *");
  const size_t if_match_at = req.headers.size();
  if (!o.if_match.empty()) req.headers.push_back("If-Match: " + o.if_match);
  Response r = impl_->Execute(req);
  bool ambiguous = r.ambiguous;
  std::optional<S3ObjectInfo> now;  // a HEAD after a 412, when one was needed
  if (r.curl_code == 0 && r.status == 412 && o.if_match.size() > 2 && o.if_match.front() == '"' &&
      o.if_match.back() == '"') {
    // RGW 16 compares a PUT's If-Match with the bare ETag, so a quoted one
    // (RFC 9110, and what S3 wants) never matches there. When the object's
    // ETag is the one named, ask again bare: the server still decides.
    WD_ASSIGN_OR_RETURN(now, Head(key));
    if (now && now->etag == o.if_match) {
      req.headers[if_match_at] = "If-Match: " + o.if_match.substr(1, o.if_match.size() - 2);
      r = impl_->Execute(req);
      ambiguous = ambiguous || r.ambiguous;
      now.reset();
    }
  }
  if (r.curl_code == 0 && r.status >= 200 && r.status < 300) {
    impl_->bytes_uploaded.fetch_add(body.size(), std::memory_order_relaxed);
    return S3PutResult{false, r.etag};
  }
  if (r.curl_code == 0 && r.status == 412) {
    if (ambiguous) {
      // An earlier attempt may have written the object and made its own
      // condition false: the object holding exactly our bytes (a single-part
      // ETag is their MD5) means it did.
      if (!now) {
        WD_ASSIGN_OR_RETURN(now, Head(key));
      }
      if (now && now->etag == "\"" + Hex(Md5(body)) + "\"") {
        impl_->bytes_uploaded.fetch_add(body.size(), std::memory_order_relaxed);
        return S3PutResult{false, now->etag};
      }
    }
    return S3PutResult{true, ""};
  }
  return impl_->Error(target, r);
}

Result<std::optional<S3ObjectInfo>> S3Client::Head(const std::string& key) {
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "Head"));
  Request req;
  req.method = "HEAD";
  req.key = key;
  Response r = impl_->Execute(req);
  if (r.curl_code == 0 && r.status == 404) return std::optional<S3ObjectInfo>();
  if (r.curl_code != 0 || r.status != 200) return impl_->Error(impl_->Target(key), r);
  if (!r.content_length) {
    return impl_->Fail(
        Status::Environment(impl_->Target(key) + ": HEAD answer has no Content-Length"));
  }
  return std::optional<S3ObjectInfo>(S3ObjectInfo{key, *r.content_length, r.etag});
}

Result<std::optional<std::string>> S3Client::Get(const std::string& key, uint64_t max_bytes,
                                                 std::string* etag) {
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "Get"));
  Request req;
  req.key = key;
  req.max_body = max_bytes;
  Response r = impl_->Execute(req);
  if (r.too_big) {
    return impl_->Fail(Status::Environment(impl_->Target(key) + ": object is larger than " +
                                           std::to_string(max_bytes) + " bytes"));
  }
  if (r.curl_code == 0 && r.status == 404 && r.S3Code() != "NoSuchBucket") {
    return std::optional<std::string>();
  }
  if (r.curl_code != 0 || r.status != 200) return impl_->Error(impl_->Target(key), r);
  if (etag) *etag = r.etag;
  return std::optional<std::string>(std::move(r.body));
}

Status S3Client::GetToSink(const std::string& key, const Sink& sink, std::string* etag) {
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "Get"));
  const std::string target = impl_->Target(key);
  uint64_t delivered = 0;
  std::string first_etag;
  for (int attempt = 1;; ++attempt) {
    Sink forward = [&](const uint8_t* data, size_t n) -> Status {
      WD_RETURN_IF_ERROR(sink(data, n));
      delivered += n;
      return Status::Ok();
    };
    Request req;
    req.key = key;
    req.sink = &forward;
    if (delivered > 0) {
      req.headers.push_back("Range: bytes=" + std::to_string(delivered) + "-");
      if (!first_etag.empty()) req.headers.push_back("If-Match: " + first_etag);
      req.require_partial = true;
    }
    Response r;
    r.attempts = attempt;
    impl_->Once(req, &r);
    if (!r.sink_status.ok()) return r.sink_status;
    if (attempt == 1) first_etag = r.etag;
    if (r.range_ignored) {
      // A whole object again would repeat bytes the sink already has.
      return impl_->Fail(Status::Environment(target + ": the server ignored a Range request"));
    }
    if (r.curl_code == 0 && (r.status == 200 || r.status == 206)) {
      if (etag) *etag = first_etag;
      return Status::Ok();
    }
    if (r.curl_code == 0 && r.status == 412) {
      return impl_->Fail(Status::Environment(target + ": object changed while being read (ETag " +
                                             first_etag + ")"));
    }
    if (r.curl_code == 0 && r.status == 404) {
      return impl_->Fail(Status::Environment(target + ": no such object"));
    }
    if (!IsRetryable(r.status, r.curl_code, r.S3Code()) ||
        attempt >= impl_->settings.max_attempts) {
      return impl_->Error(target, r);
    }
    impl_->Sleep(attempt);
  }
}

Result<S3ListResult> S3Client::List(const std::string& prefix, const std::string& delimiter,
                                    int max_keys) {
  const std::string target = impl_->Target(prefix) + " (ListObjectsV2)";
  S3ListResult out;
  std::string token;
  for (;;) {
    Request req;
    req.query = {{"list-type", "2"}, {"max-keys", std::to_string(max_keys)}};
    if (!prefix.empty()) req.query.emplace_back("prefix", prefix);
    if (!delimiter.empty()) req.query.emplace_back("delimiter", delimiter);
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
    Response r = impl_->Execute(req);
    if (r.curl_code != 0 || r.status != 200) return impl_->Error(target, r);
    Result<S3ListPage> page = ParseListBucketResult(r.body);
    if (!page.ok()) return impl_->Fail(page.status().WithContext(target));
    for (auto& o : page->result.objects) out.objects.push_back(std::move(o));
    for (auto& p : page->result.common_prefixes) out.common_prefixes.push_back(std::move(p));
    if (!page->truncated) return out;
    if (page->next_token == token) {
      return impl_->Fail(
          Status::Environment(target + ": the listing repeats its continuation token"));
    }
    token = page->next_token;
  }
}

Status S3Client::Delete(const std::string& key) {
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "Delete"));
  Request req;
  req.method = "DELETE";
  req.key = key;
  Response r = impl_->Execute(req);
  if (r.curl_code == 0 && (r.status == 204 || r.status == 200)) return Status::Ok();
  if (r.curl_code == 0 && r.status == 404 && r.S3Code() != "NoSuchBucket") return Status::Ok();
  return impl_->Error(impl_->Target(key), r);
}

Status S3Client::DeleteMany(const std::vector<std::string>& keys) {
  const std::string target = impl_->Target("") + " (DeleteObjects)";
  std::vector<S3DeleteError> failed;
  for (size_t at = 0; at < keys.size(); at += kDeleteBatch) {
    std::vector<std::string> batch(
        keys.begin() + static_cast<std::ptrdiff_t>(at),
        keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), at + kDeleteBatch)));
    for (const std::string& k : batch) WD_RETURN_IF_ERROR(impl_->CheckKey(k, "DeleteMany"));
    const std::string body = DeleteRequestXml(batch);
    Request req;
    req.method = "POST";
    req.query = {{"delete", ""}};
    req.body = body;
    req.body_sha256 = Sha256Hex(body);
    req.headers = {"Content-Type: application/xml", "Content-MD5: " + Base64(Md5(body))};
    Response r = impl_->Execute(req);
    if (r.curl_code != 0 || r.status != 200) return impl_->Error(target, r);
    Result<std::vector<S3DeleteError>> errors = ParseDeleteResult(r.body);
    if (!errors.ok()) return impl_->Fail(errors.status().WithContext(target));
    for (auto& e : *errors) {
      if (e.code != "NoSuchKey") failed.push_back(std::move(e));
    }
  }
  if (failed.empty()) return Status::Ok();
  std::string msg = target + ": " + std::to_string(failed.size()) + " of " +
                    std::to_string(keys.size()) + " keys not deleted: ";
  for (size_t i = 0; i < failed.size() && i < 5; ++i) {
    if (i) msg += ", ";
    msg += "'" + failed[i].key + "' (" + failed[i].code +
           (failed[i].message.empty() ? "" : ": " + failed[i].message) + ")";
  }
  if (failed.size() > 5) msg += " and " + std::to_string(failed.size() - 5) + " more";
  return impl_->Fail(Status::Environment(msg));
}

Result<std::string> S3Client::CreateMultipart(const std::string& key, const S3PutOptions& o) {
  const std::string target = impl_->Target(key) + " (CreateMultipartUpload)";
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "CreateMultipart"));
  if (o.if_none_match || !o.if_match.empty()) {
    return Status::Usage(target + ": conditional multipart uploads are not supported");
  }
  Request req;
  req.method = "POST";
  req.key = key;
  req.query = {{"uploads", ""}};
  WD_RETURN_IF_ERROR(impl_->PutHeaders(o, target, &req));
  Response r = impl_->Execute(req);
  if (r.curl_code != 0 || r.status != 200) return impl_->Error(target, r);
  Result<std::string> id = ParseInitiateMultipartUploadResult(r.body);
  if (!id.ok()) return impl_->Fail(id.status().WithContext(target));
  return id;
}

Result<std::string> S3Client::UploadPart(const std::string& key, const std::string& upload_id,
                                         int part, std::string_view body,
                                         const std::string& sha256_hex) {
  const std::string target = impl_->Target(key) + " (part " + std::to_string(part) + ")";
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "UploadPart"));
  if (part < 1 || part > 10000) return Status::Usage(target + ": part numbers are 1 to 10000");
  if (!IsHex64(sha256_hex)) {
    return Status::Usage(target +
                         ": UploadPart needs the body's SHA-256 (64 lowercase hex digits)");
  }
  Request req;
  req.method = "PUT";
  req.key = key;
  req.query = {{"partNumber", std::to_string(part)}, {"uploadId", upload_id}};
  req.body = body;
  req.body_sha256 = sha256_hex;
  Response r = impl_->Execute(req);
  if (r.curl_code != 0 || r.status != 200) return impl_->Error(target, r);
  if (r.etag.empty()) {
    return impl_->Fail(Status::Environment(target + ": UploadPart answer has no ETag"));
  }
  impl_->bytes_uploaded.fetch_add(body.size(), std::memory_order_relaxed);
  return r.etag;
}

Result<S3PutResult> S3Client::CompleteMultipart(const std::string& key,
                                                const std::string& upload_id,
                                                const std::vector<std::string>& part_etags) {
  const std::string target = impl_->Target(key) + " (CompleteMultipartUpload)";
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "CompleteMultipart"));
  if (part_etags.empty()) return Status::Usage(target + ": no parts");
  const std::string body = CompleteMultipartXml(part_etags);
  Request req;
  req.method = "POST";
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  req.body = body;
  req.body_sha256 = Sha256Hex(body);
  req.headers = {"Content-Type: application/xml"};
  std::string etag;
  bool ambiguous = false;
  for (int attempt = 1;; ++attempt) {
    Response r = impl_->Execute(req);
    ambiguous = ambiguous || r.ambiguous;
    if (r.curl_code == 0 && r.status == 200) {
      // S3 may answer 200 and put an <Error> in the body.
      S3ErrorBody e = ParseS3Error(r.body);
      if (!e.code.empty() && IsRetryable(500, 0, e.code) &&
          attempt < impl_->settings.max_attempts) {
        ambiguous = true;
        impl_->Sleep(attempt);
        continue;
      }
      Result<std::string> parsed = ParseCompleteMultipartUploadResult(r.body);
      if (!parsed.ok()) return impl_->Fail(parsed.status().WithContext(target));
      etag = *parsed;
      break;
    }
    if (r.curl_code == 0 && r.status == 404 && r.S3Code() == "NoSuchUpload" && ambiguous) {
      break;  // an earlier attempt completed it: the HEAD below tells
    }
    return impl_->Error(target, r);
  }
  if (etag.empty()) {
    WD_ASSIGN_OR_RETURN(std::optional<S3ObjectInfo> info, Head(key));
    if (!info) {
      return impl_->Fail(Status::Environment(target + ": completed, but the object is not there"));
    }
    etag = info->etag;
  }
  return S3PutResult{false, etag};
}

Status S3Client::AbortMultipart(const std::string& key, const std::string& upload_id) {
  WD_RETURN_IF_ERROR(impl_->CheckKey(key, "AbortMultipart"));
  Request req;
  req.method = "DELETE";
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  Response r = impl_->Execute(req);
  if (r.curl_code == 0 && (r.status == 204 || r.status == 200)) return Status::Ok();
  if (r.curl_code == 0 && r.status == 404 && r.S3Code() != "NoSuchBucket") return Status::Ok();
  return impl_->Error(impl_->Target(key) + " (AbortMultipartUpload)", r);
}

Result<std::vector<S3Upload>> S3Client::ListMultipartUploads(const std::string& prefix) {
  const std::string target = impl_->Target(prefix) + " (ListMultipartUploads)";
  std::vector<S3Upload> out;
  std::string key_marker, id_marker;
  for (;;) {
    Request req;
    req.query = {{"uploads", ""}};
    if (!prefix.empty()) req.query.emplace_back("prefix", prefix);
    if (!key_marker.empty()) req.query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) req.query.emplace_back("upload-id-marker", id_marker);
    Response r = impl_->Execute(req);
    if (r.curl_code != 0 || r.status != 200) return impl_->Error(target, r);
    Result<S3UploadsPage> page = ParseListMultipartUploadsResult(r.body);
    if (!page.ok()) return impl_->Fail(page.status().WithContext(target));
    for (auto& u : page->uploads) out.push_back(std::move(u));
    if (!page->truncated) return out;
    if (page->next_key_marker == key_marker && page->next_upload_id_marker == id_marker) {
      return impl_->Fail(Status::Environment(target + ": the listing repeats its markers"));
    }
    key_marker = page->next_key_marker;
    id_marker = page->next_upload_id_marker;
  }
}

}  // namespace wd
