#include "core/s3_client.h"

#include <curl/curl.h>
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace wd {
namespace {

TEST_CASE("query strings are sorted and RFC 3986 encoded, as curl 7.88 signs them verbatim") {
  struct Row {
    std::vector<std::pair<std::string, std::string>> params;
    std::string expected;
  };
  const Row rows[] = {
      {{{"list-type", "2"}, {"prefix", "x"}, {"delimiter", "/"}},
       "delimiter=%2F&list-type=2&prefix=x"},
      {{}, ""},
      {{{"uploads", ""}}, "uploads="},
      {{{"delete", ""}}, "delete="},
      {{{"prefix", "a b"}}, "prefix=a%20b"},
      {{{"prefix", "a+b=c&d"}}, "prefix=a%2Bb%3Dc%26d"},
      {{{"prefix", "~-_.AZaz09"}}, "prefix=~-_.AZaz09"},
      {{{"prefix", "caf\xc3\xa9/\xe2\x82\xac"}}, "prefix=caf%C3%A9%2F%E2%82%AC"},
      {{{"uploadId", "2~abc"}, {"partNumber", "10"}}, "partNumber=10&uploadId=2~abc"},
      // Sorted by the encoded name, then by the value; case sensitive.
      {{{"b", "2"}, {"b", "1"}, {"B", "3"}, {"a", ""}}, "B=3&a=&b=1&b=2"},
      {{{"continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="}},
       "continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.expected);
    CHECK(CanonicalQuery(row.params) == row.expected);
  }
}

TEST_CASE("keys are encoded for the path with '/' kept") {
  struct Row {
    std::string key, expected;
  };
  const Row rows[] = {
      {"models/mlp/1/group1-shard1of1.bin", "models/mlp/1/group1-shard1of1.bin"},
      {"a b", "a%20b"},
      {"a+b=c", "a%2Bb%3Dc"},
      {"~user/x.y_z-w", "~user/x.y_z-w"},
      {"caf\xc3\xa9", "caf%C3%A9"},
      {"a?b#c%d", "a%3Fb%23c%25d"},
      {"./../x", "./../x"},  // kept as is; curl is told not to squash them
      {"x//y", "x//y"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.key);
    CHECK(UriEncodeKey(row.key) == row.expected);
  }
  CHECK(UriEncode("a/b") == "a%2Fb");
}

TEST_CASE("s3:// URLs are parsed strictly") {
  struct Row {
    std::string url;
    std::string bucket, prefix;  // expected when error is empty
    std::string error;           // a piece of the message
  };
  const Row rows[] = {
      {"s3://weightdrop-test", "weightdrop-test", "", ""},
      {"s3://weightdrop-test/", "weightdrop-test", "", ""},
      {"s3://b12/models/tfjs", "b12", "models/tfjs", ""},
      {"s3://b12/models/tfjs/", "b12", "models/tfjs", ""},
      {"s3://my.bucket.name/x", "my.bucket.name", "x", ""},
      {"http://bucket/x", "", "", "not an s3:// URL"},
      {"s3://", "", "", "no bucket name"},
      {"s3:///x", "", "", "no bucket name"},
      {"s3://ab", "", "", "3 to 63"},
      {"s3://" + std::string(64, 'a'), "", "", "3 to 63"},
      {"s3://Bucket", "", "", "lowercase"},
      {"s3://bu_cket", "", "", "lowercase"},
      {"s3://-bucket", "", "", "start and end"},
      {"s3://bucket-", "", "", "start and end"},
      {"s3://my..bucket", "", "", "\"..\""},
      {"s3://192.168.1.1", "", "", "IP address"},
      {"s3://xn--bucket", "", "", "xn--"},
      {"s3://bucket//x", "", "", "empty path segment"},
      {"s3://bucket/a//b", "", "", "empty path segment"},
      {"s3://bucket/a/../b", "", "", "'..' segment"},
      {"s3://bucket/./b", "", "", "'.' segment"},
      {"s3://bucket/a//", "", "", "empty path segment"},
      {"s3://bucket/a\nb", "", "", "control characters"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.url);
    Result<S3Url> r = ParseS3Url(row.url);
    if (row.error.empty()) {
      REQUIRE(r.ok());
      CHECK(r->bucket == row.bucket);
      CHECK(r->prefix == row.prefix);
    } else {
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().kind() == ErrorKind::kConfig);
      CHECK(r.status().message().find(row.error) != std::string::npos);
    }
  }
  CHECK(IsS3Url("s3://x"));
  CHECK_FALSE(IsS3Url("/srv/s3://x"));
  CHECK_FALSE(IsS3Url("S3://x"));
}

// Every variable ResolveCredentials and ResolveSettings read, cleared, with
// HOME in a scratch folder: the machine's own ~/.aws never leaks in.
struct CleanAwsEnv {
  test::TempDir home;
  test::ScopedEnv e1{"AWS_ACCESS_KEY_ID", nullptr}, e2{"AWS_SECRET_ACCESS_KEY", nullptr},
      e3{"AWS_SESSION_TOKEN", nullptr}, e4{"AWS_PROFILE", nullptr},
      e5{"AWS_SHARED_CREDENTIALS_FILE", nullptr}, e6{"CREDENTIALS_DIRECTORY", nullptr},
      e7{"AWS_ENDPOINT_URL", nullptr}, e8{"AWS_ENDPOINT_URL_S3", nullptr},
      e9{"AWS_REGION", nullptr}, e10{"AWS_DEFAULT_REGION", nullptr},
      e11{"HOME", home.path().c_str()};
};

constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY";

TEST_CASE("credentials come from the environment first") {
  CleanAwsEnv env;
  test::ScopedEnv a("AWS_ACCESS_KEY_ID", "AKIDENV"), s("AWS_SECRET_ACCESS_KEY", kSecret),
      t("AWS_SESSION_TOKEN", "tok");
  Result<S3Credentials> c = ResolveCredentials(S3Settings{});
  REQUIRE(c.ok());
  CHECK(c->access_key == "AKIDENV");
  CHECK(c->secret_key == kSecret);
  CHECK(c->session_token == "tok");
}

TEST_CASE("half the credentials in the environment is an error that names the other half") {
  CleanAwsEnv env;
  {
    test::ScopedEnv s("AWS_SECRET_ACCESS_KEY", kSecret);
    Result<S3Credentials> c = ResolveCredentials(S3Settings{});
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().kind() == ErrorKind::kConfig);
    CHECK(c.status().message() == "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
  }
  test::ScopedEnv a("AWS_ACCESS_KEY_ID", "AKID");
  Result<S3Credentials> c = ResolveCredentials(S3Settings{});
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().message() == "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
}

const char kIni[] =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = AKIDDEFAULT\n"
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY\n"
    "\n"
    "[publisher]\r\n"
    "  AWS_ACCESS_KEY_ID = AKIDPUB  \r\n"
    "aws_secret_access_key = pubsecret/+=\r\n"
    "aws_session_token = sess\r\n"
    "; another\n"
    "[profile broken]\n"
    "aws_access_key_id = AKIDBROKEN\n";

TEST_CASE("credentials come from the profile of a shared credentials file") {
  CleanAwsEnv env;
  std::string file = env.home / "creds";
  test::WriteFile(file, kIni);
  struct Row {
    std::string profile_setting, profile_env;
    std::string access, secret, token;
  };
  const Row rows[] = {
      {"", "", "AKIDDEFAULT", kSecret, ""},
      {"publisher", "", "AKIDPUB", "pubsecret/+=", "sess"},
      {"", "publisher", "AKIDPUB", "pubsecret/+=", "sess"},
      {"default", "publisher", "AKIDDEFAULT", kSecret, ""},  // explicit wins
  };
  for (const Row& row : rows) {
    CAPTURE(row.profile_setting);
    CAPTURE(row.profile_env);
    test::ScopedEnv p("AWS_PROFILE", row.profile_env.empty() ? nullptr : row.profile_env.c_str());
    S3Settings s;
    s.credentials_file = file;
    s.profile = row.profile_setting;
    Result<S3Credentials> c = ResolveCredentials(s);
    REQUIRE(c.ok());
    CHECK(c->access_key == row.access);
    CHECK(c->secret_key == row.secret);
    CHECK(c->session_token == row.token);
  }
}

TEST_CASE("an explicit credentials file or profile wins over the environment's keys") {
  CleanAwsEnv env;
  test::WriteFile(env.home / "creds", kIni);
  test::ScopedEnv a("AWS_ACCESS_KEY_ID", "AKIDENV"), s("AWS_SECRET_ACCESS_KEY", "envsecret");
  S3Settings st;
  st.credentials_file = env.home / "creds";
  CHECK(ResolveCredentials(st)->access_key == "AKIDDEFAULT");
  st.credentials_file.clear();
  CHECK(ResolveCredentials(st)->access_key == "AKIDENV");
  st.profile = "publisher";
  test::ScopedEnv f("AWS_SHARED_CREDENTIALS_FILE", (env.home / "creds").c_str());
  CHECK(ResolveCredentials(st)->access_key == "AKIDPUB");
}

TEST_CASE("credentials files are searched: systemd's, then AWS_SHARED_CREDENTIALS_FILE or ~/.aws") {
  CleanAwsEnv env;
  test::WriteFile(env.home / "home-creds",
                  "[default]\naws_access_key_id=AKIDHOME\n"
                  "aws_secret_access_key=x\n");
  // ~/.aws/credentials
  {
    test::TempDir aws_home;
    std::string dir = aws_home / ".aws";
    std::filesystem::create_directories(dir);
    test::WriteFile(dir + "/credentials",
                    "[default]\naws_access_key_id=AKIDDOTAWS\n"
                    "aws_secret_access_key=x\n");
    test::ScopedEnv h("HOME", aws_home.path().c_str());
    CHECK(ResolveCredentials(S3Settings{})->access_key == "AKIDDOTAWS");
  }
  test::ScopedEnv f("AWS_SHARED_CREDENTIALS_FILE", (env.home / "home-creds").c_str());
  CHECK(ResolveCredentials(S3Settings{})->access_key == "AKIDHOME");
  test::TempDir creds_dir;
  test::ScopedEnv d("CREDENTIALS_DIRECTORY", creds_dir.path().c_str());
  CHECK(ResolveCredentials(S3Settings{})->access_key == "AKIDHOME");  // no aws-credentials there
  test::WriteFile(creds_dir / "aws-credentials",
                  "[default]\naws_access_key_id=AKIDSYSTEMD\naws_secret_access_key=x\n");
  CHECK(ResolveCredentials(S3Settings{})->access_key == "AKIDSYSTEMD");
}

TEST_CASE("missing credentials are reported with where they were looked for, never a secret") {
  CleanAwsEnv env;
  std::string file = env.home / "creds";
  test::WriteFile(file, kIni);
  struct Row {
    std::string credentials_file, profile;
    std::string expected;
  };
  const Row rows[] = {
      {file, "broken", file + ": profile [broken] has no aws_secret_access_key"},
      {file, "nope", file + ": no profile [nope] (it has: broken, default, publisher)"},
      {env.home / "absent", "", "S3 credentials file " + (env.home / "absent") + " does not exist"},
      {"", "",
       "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile "
       "[default] in a credentials file (none found: " +
           env.home.path() + "/.aws/credentials)"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.expected);
    S3Settings s;
    s.credentials_file = row.credentials_file;
    s.profile = row.profile;
    Result<S3Credentials> c = ResolveCredentials(s);
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().kind() == ErrorKind::kConfig);
    CHECK(c.status().message() == row.expected);
    CHECK(c.status().message().find("SECRETKEY") == std::string::npos);
    CHECK(c.status().message().find("pubsecret") == std::string::npos);
  }
}

TEST_CASE("endpoint and region resolve from settings, then the environment, then AWS defaults") {
  CleanAwsEnv env;
  Result<S3Settings> s = ResolveSettings(S3Settings{});
  REQUIRE(s.ok());
  CHECK(s->region == "us-east-1");
  CHECK(s->endpoint == "https://s3.us-east-1.amazonaws.com");
  {
    test::ScopedEnv r("AWS_DEFAULT_REGION", "eu-west-1");
    CHECK(ResolveSettings(S3Settings{})->endpoint == "https://s3.eu-west-1.amazonaws.com");
    test::ScopedEnv r2("AWS_REGION", "eu-central-1");
    CHECK(ResolveSettings(S3Settings{})->region == "eu-central-1");
  }
  test::ScopedEnv e("AWS_ENDPOINT_URL", "http://127.0.0.1:7480/");
  CHECK(ResolveSettings(S3Settings{})->endpoint == "http://127.0.0.1:7480");
  S3Settings explicit_settings;
  explicit_settings.endpoint = "https://minio.internal:9000";
  explicit_settings.region = "local";
  s = ResolveSettings(explicit_settings);
  REQUIRE(s.ok());
  CHECK(s->endpoint == "https://minio.internal:9000");
  CHECK(s->region == "local");
}

TEST_CASE("bad endpoints and regions are config errors") {
  CleanAwsEnv env;
  struct Row {
    std::string endpoint, region, error;
  };
  const Row rows[] = {
      {"127.0.0.1:7480", "", "must start with http:// or https://"},
      {"ftp://host", "", "must start with http:// or https://"},
      {"http://", "", "must start with http:// or https://"},
      {"http://:80", "", "no host"},
      {"http://host/path", "", "no path"},
      {"http://user:pw@host", "", "no path, query or user"},
      {"http://host", "us east", "not a region name"},
      {"http://host", "a:b", "not a region name"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.endpoint);
    S3Settings s;
    s.endpoint = row.endpoint;
    s.region = row.region;
    Result<S3Settings> r = ResolveSettings(s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().kind() == ErrorKind::kConfig);
    CHECK(r.status().message().find(row.error) != std::string::npos);
  }
}

TEST_CASE("the client describes itself without secrets") {
  CleanAwsEnv env;
  test::ScopedEnv a("AWS_ACCESS_KEY_ID", "AKID"), s("AWS_SECRET_ACCESS_KEY", kSecret);
  S3Settings st;
  st.endpoint = "http://127.0.0.1:1";
  auto c = S3Client::Create(st, "weightdrop-test");
  REQUIRE(c.ok());
  CHECK((*c)->Describe() ==
        "s3://weightdrop-test at http://127.0.0.1:1 (region us-east-1, path-style)");
  CHECK_FALSE(S3Client::Create(st, "Bad_Bucket").ok());
}

TEST_CASE("an unreachable endpoint is an environment error naming it, after the retries") {
  CleanAwsEnv env;
  test::ScopedEnv a("AWS_ACCESS_KEY_ID", "AKID"), s("AWS_SECRET_ACCESS_KEY", kSecret);
  S3Settings st;
  st.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  st.max_attempts = 2;
  st.first_backoff_ms = 1;
  auto c = S3Client::Create(st, "weightdrop-test");
  REQUIRE(c.ok());
  Result<std::optional<S3ObjectInfo>> h = (*c)->Head("x/y");
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().kind() == ErrorKind::kEnvironment);
  const std::string& m = h.status().message();
  CHECK(m.find("s3://weightdrop-test/x/y: cannot reach http://127.0.0.1:1: ") == 0);
  CHECK(m.find("(curl error 7, 2 attempts); check the endpoint and the network") !=
        std::string::npos);
  CHECK(m.find(kSecret) == std::string::npos);
  S3Client::Stats stats = (*c)->stats();
  CHECK(stats.requests == 2);
  CHECK(stats.retries == 1);
  CHECK(stats.last_error == m);
  // Bad arguments never reach the network.
  S3PutOptions o;
  o.sha256_hex = "not-a-digest";
  Result<S3PutResult> p = (*c)->Put("k", "body", o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().kind() == ErrorKind::kUsage);
  CHECK((*c)->stats().requests == 2);
}

TEST_CASE("retries: network faults, 5xx, 429 and S3's throttling codes; not other 4xx") {
  struct Row {
    long status;
    int curl_code;
    std::string s3_code;
    bool retry;
  };
  const Row rows[] = {
      {200, 0, "", false},
      {404, 0, "NoSuchKey", false},
      {403, 0, "SignatureDoesNotMatch", false},
      {412, 0, "PreconditionFailed", false},
      {400, 0, "XAmzContentSHA256Mismatch", false},
      {400, 0, "RequestTimeout", true},
      {503, 0, "SlowDown", true},
      {500, 0, "InternalError", true},
      {502, 0, "", true},
      {504, 0, "", true},
      {429, 0, "", true},
      {408, 0, "", true},
      {409, 0, "ConditionalRequestConflict", true},
      {0, CURLE_COULDNT_CONNECT, "", true},
      {0, CURLE_OPERATION_TIMEDOUT, "", true},
      {0, CURLE_RECV_ERROR, "", true},
      {0, CURLE_SEND_ERROR, "", true},
      {0, CURLE_GOT_NOTHING, "", true},
      {200, CURLE_PARTIAL_FILE, "", true},
      {0, CURLE_URL_MALFORMAT, "", false},
      {0, CURLE_PEER_FAILED_VERIFICATION, "", false},
      {200, CURLE_WRITE_ERROR, "", false},  // our sink said stop
  };
  for (const Row& row : rows) {
    CAPTURE(row.status);
    CAPTURE(row.curl_code);
    CAPTURE(row.s3_code);
    CHECK(IsRetryable(row.status, row.curl_code, row.s3_code) == row.retry);
  }
}

TEST_CASE("backoff doubles from the first delay, is capped, and jitters within [d/2, d]") {
  CHECK(BackoffMs(1, 200, 0.0) == 100);
  CHECK(BackoffMs(1, 200, 0.999999) == 199);
  CHECK(BackoffMs(2, 200, 0.0) == 200);
  CHECK(BackoffMs(3, 200, 0.5) == 600);
  CHECK(BackoffMs(4, 200, 0.0) == 800);
  CHECK(BackoffMs(30, 200, 0.0) == 10000);  // cap 20 s
  CHECK(BackoffMs(30, 200, 1.0) == 20000);
  CHECK(BackoffMs(1, 0, 0.0) == 0);
  for (int attempt = 1; attempt < 12; ++attempt) {
    CHECK(BackoffMs(attempt + 1, 200, 0.0) >= BackoffMs(attempt, 200, 0.0));
  }
}

TEST_CASE("ListBucketResult: objects, common prefixes and the continuation token") {
  // As RGW 16 answers (namespaced, quoted ETags escaped).
  const std::string truncated =
      R"(<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>weightdrop-test</Name><Prefix>m/</Prefix><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><NextContinuationToken>m/b.bin</NextContinuationToken><Contents><Key>m/a &amp; b.bin</Key><LastModified>2026-12-02T08:22:50.106Z</LastModified><ETag>&quot;7a642c4acb6bdfec72cb7ba2beb31171&quot;</ETag><Size>2000000</Size><StorageClass>STANDARD</StorageClass><Type>Normal</Type></Contents><CommonPrefixes><Prefix>m/1/</Prefix></CommonPrefixes><KeyCount>2</KeyCount></ListBucketResult>)";
  Result<S3ListPage> p = ParseListBucketResult(truncated);
  REQUIRE(p.ok());
  REQUIRE(p->result.objects.size() == 1);
  CHECK(p->result.objects[0].key == "m/a & b.bin");
  CHECK(p->result.objects[0].size == 2000000);
  CHECK(p->result.objects[0].etag == "\"7a642c4acb6bdfec72cb7ba2beb31171\"");
  CHECK(p->result.common_prefixes == std::vector<std::string>{"m/1/"});
  CHECK(p->truncated);
  CHECK(p->next_token == "m/b.bin");

  const std::string last =
      R"(<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>)";
  p = ParseListBucketResult(last);
  REQUIRE(p.ok());
  CHECK(p->result.objects.empty());
  CHECK_FALSE(p->truncated);

  struct Bad {
    std::string body, error;
  };
  const Bad bad[] = {
      {"", "unparseable ListBucketResult answer"},
      {"<ListBucketResult><Contents><Key>k</Key>", "unparseable ListBucketResult answer"},
      {"<Other/>", "answer is not a ListBucketResult document (root <Other>)"},
      {"<Error><Code>AccessDenied</Code><Message>no</Message></Error>",
       "error answer instead of ListBucketResult: AccessDenied: no"},
      {"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
       "truncated listing without a <NextContinuationToken>"},
      {"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
       "bad <Size> '-1'"},
      {"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
       "listing entry without a <Key>"},
  };
  for (const Bad& row : bad) {
    CAPTURE(row.body);
    Result<S3ListPage> r = ParseListBucketResult(row.body);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().kind() == ErrorKind::kEnvironment);
    CHECK(r.status().message().find(row.error) != std::string::npos);
  }
}

TEST_CASE("Error bodies give their code and message; anything else gives nothing") {
  S3ErrorBody e = ParseS3Error(
      R"(<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><RequestId>tx1</RequestId></Error>)");
  CHECK(e.code == "InvalidAccessKeyId");
  CHECK(e.message == "The AWS Access Key Id you provided does not exist in our records.");
  // RGW sends an empty <Message/>.
  e = ParseS3Error(
      R"(<Error><Code>NoSuchBucket</Code><Message></Message><BucketName>nobucket</BucketName></Error>)");
  CHECK(e.code == "NoSuchBucket");
  CHECK(e.message.empty());
  CHECK(ParseS3Error("").code.empty());
  CHECK(ParseS3Error("<html>502 Bad Gateway</html>").code.empty());
  CHECK(ParseS3Error("not xml at all").code.empty());
}

TEST_CASE("multipart answers: upload id, completion ETag, an error hidden in a 200") {
  Result<std::string> id = ParseInitiateMultipartUploadResult(
      R"(<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>2~f6Xn8cmUOqHE2mpRVmNLXHzkI5lAQSM</UploadId></InitiateMultipartUploadResult>)");
  REQUIRE(id.ok());
  CHECK(*id == "2~f6Xn8cmUOqHE2mpRVmNLXHzkI5lAQSM");
  CHECK_FALSE(
      ParseInitiateMultipartUploadResult(
          "<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>")
          .ok());

  Result<std::string> etag = ParseCompleteMultipartUploadResult(
      R"(<CompleteMultipartUploadResult><Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-3&quot;</ETag></CompleteMultipartUploadResult>)");
  REQUIRE(etag.ok());
  CHECK(*etag == "\"3858f62230ac3c915f300c664312c11f-3\"");
  // RGW 16: no ETag in the answer.
  etag = ParseCompleteMultipartUploadResult(
      R"(<CompleteMultipartUploadResult><Location>h</Location><Bucket>b</Bucket><Key>k</Key><ETag></ETag></CompleteMultipartUploadResult>)");
  REQUIRE(etag.ok());
  CHECK(etag->empty());
  etag = ParseCompleteMultipartUploadResult(
      "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try "
      "again.</Message></Error>");
  REQUIRE_FALSE(etag.ok());
  CHECK(etag.status().message() ==
        "error answer instead of CompleteMultipartUploadResult: InternalError: We encountered an "
        "internal error. Please try again.");
}

TEST_CASE("DeleteResult: per-key errors are reported, deleted keys are not") {
  Result<std::vector<S3DeleteError>> r = ParseDeleteResult(
      R"(<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Deleted><Key>a</Key></Deleted><Error><Key>b/c</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error><Error><Key>d</Key><Code>InternalError</Code><Message></Message></Error></DeleteResult>)");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].key == "b/c");
  CHECK((*r)[0].code == "AccessDenied");
  CHECK((*r)[0].message == "Access Denied");
  CHECK((*r)[1].key == "d");
  CHECK((*r)[1].code == "InternalError");
  r = ParseDeleteResult("<DeleteResult/>");
  REQUIRE(r.ok());
  CHECK(r->empty());
}

TEST_CASE("ListMultipartUploadsResult: uploads and the markers of the next page") {
  Result<S3UploadsPage> p = ParseListMultipartUploadsResult(
      R"(<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><NextKeyMarker>m/2.bin</NextKeyMarker><NextUploadIdMarker>2~yy</NextUploadIdMarker><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated><Upload><Key>m/1.bin</Key><UploadId>2~xx</UploadId><Initiated>2026-12-02T08:22:50.106Z</Initiated></Upload><Upload><Key>m/2.bin</Key><UploadId>2~yy</UploadId></Upload></ListMultipartUploadsResult>)");
  REQUIRE(p.ok());
  REQUIRE(p->uploads.size() == 2);
  CHECK(p->uploads[0].key == "m/1.bin");
  CHECK(p->uploads[0].upload_id == "2~xx");
  CHECK(p->truncated);
  CHECK(p->next_key_marker == "m/2.bin");
  CHECK(p->next_upload_id_marker == "2~yy");
  CHECK_FALSE(
      ParseListMultipartUploadsResult("<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                                      "</ListMultipartUploadsResult>")
          .ok());
}

TEST_CASE("request bodies escape keys and number parts from 1") {
  CHECK(DeleteRequestXml({"a", "b&<c>"}) ==
        "<?xml version=\"1.0\"?><Delete><Quiet>true</Quiet>"
        "<Object><Key>a</Key></Object><Object><Key>b&amp;&lt;c&gt;</Key></Object></Delete>");
  CHECK(CompleteMultipartXml({"\"e1\"", "\"e2\""}) ==
        "<?xml version=\"1.0\"?><CompleteMultipartUpload>"
        "<Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag></Part>"
        "<Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag></Part>"
        "</CompleteMultipartUpload>");
}

}  // namespace
}  // namespace wd
