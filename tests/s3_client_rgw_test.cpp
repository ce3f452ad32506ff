// S3Client against a real S3 server (Ceph RGW from scripts/rgw.sh), no mocks.
// Runs when WD_TEST_S3_ENDPOINT, WD_TEST_S3_ACCESS_KEY, WD_TEST_S3_SECRET_KEY
// and WD_TEST_S3_BUCKET are set (`set -a; . DIR/env; set +a` after
// `scripts/rgw.sh start DIR`); otherwise every case says so and passes.
// Each case works under its own random prefix and cleans up after itself.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/s3_client.h"
#include "core/sha256.h"
#include "tests/test_util.h"

namespace wd {
namespace {

struct RgwEnv {
  std::string endpoint, access_key, secret_key, bucket;
};

std::optional<RgwEnv> FromEnv() {
  auto get = [](const char* n) {
    const char* v = std::getenv(n);
    return v ? std::string(v) : std::string();
  };
  RgwEnv e{get("WD_TEST_S3_ENDPOINT"), get("WD_TEST_S3_ACCESS_KEY"), get("WD_TEST_S3_SECRET_KEY"),
           get("WD_TEST_S3_BUCKET")};
  if (e.endpoint.empty() || e.access_key.empty() || e.secret_key.empty() || e.bucket.empty()) {
    return std::nullopt;
  }
  return e;
}

std::string RandomPrefix() {
  std::random_device rd;
  return "s3-client-test/" + std::to_string(rd()) + std::to_string(rd()) + "/";
}

// A client for the test server, credentials from a shared credentials file
// (the path an operator's systemd unit takes), overridable for bad-key tests.
struct Fixture {
  RgwEnv env;
  test::TempDir dir;
  std::string prefix = RandomPrefix();

  explicit Fixture(RgwEnv e) : env(std::move(e)) {}

  std::unique_ptr<S3Client> Client(const std::string& access_key, const std::string& secret_key,
                                   const std::string& bucket, int max_attempts = 3) {
    test::WriteFile(dir / "credentials", "[rgw]\naws_access_key_id = " + access_key +
                                             "\naws_secret_access_key = " + secret_key + "\n");
    S3Settings s;
    s.endpoint = env.endpoint;
    s.region = "us-east-1";
    s.credentials_file = dir / "credentials";
    s.profile = "rgw";
    s.max_attempts = max_attempts;
    s.first_backoff_ms = 50;
    auto c = S3Client::Create(s, bucket);
    REQUIRE(c.ok());
    return std::move(c).value();
  }
  std::unique_ptr<S3Client> Client() { return Client(env.access_key, env.secret_key, env.bucket); }
};

#define WD_NEED_RGW(fixture_var)                                                    \
  std::optional<RgwEnv> wd_rgw_env_ = FromEnv();                                    \
  if (!wd_rgw_env_) {                                                               \
    MESSAGE(                                                                        \
        "skipped: WD_TEST_S3_ENDPOINT etc. not set (scripts/rgw.sh start DIR; set " \
        "-a; . DIR/env)");                                                          \
    return;                                                                         \
  }                                                                                 \
  Fixture fixture_var(*wd_rgw_env_)

S3PutOptions Opts(std::string_view body) {
  S3PutOptions o;
  o.sha256_hex = Sha256Hex(body);
  return o;
}

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_CASE("rgw: put, head, get and stream back keys that need encoding") {
  WD_NEED_RGW(f);
  auto c = f.Client();
  REQUIRE(c->Check().ok());
  const std::vector<std::string> keys = {
      f.prefix + "plain.bin", f.prefix + "a space+plus=eq~tilde.bin",
      f.prefix + "caf\xc3\xa9/\xe2\x82\xac.bin", f.prefix + "./dots/../x.bin"};
  for (size_t i = 0; i < keys.size(); ++i) {
    CAPTURE(keys[i]);
    std::string body = Bytes(1000 + i, static_cast<uint32_t>(i));
    S3PutOptions o = Opts(body);
    o.content_type = "application/octet-stream";
    o.cache_control = "public, max-age=31536000, immutable";
    Result<S3PutResult> p = c->Put(keys[i], body, o);
    REQUIRE_MESSAGE(p.ok(), p.status().message());
    CHECK_FALSE(p->precondition_failed);
    CHECK(p->etag.size() == 34);  // "md5"

    Result<std::optional<S3ObjectInfo>> h = c->Head(keys[i]);
    REQUIRE_MESSAGE(h.ok(), h.status().message());
    REQUIRE(h->has_value());
    CHECK((*h)->size == body.size());
    CHECK((*h)->etag == p->etag);

    std::string etag;
    Result<std::optional<std::string>> g = c->Get(keys[i], 1 << 20, &etag);
    REQUIRE_MESSAGE(g.ok(), g.status().message());
    REQUIRE(g->has_value());
    CHECK(**g == body);
    CHECK(etag == p->etag);

    std::string streamed;
    Status st = c->GetToSink(keys[i], [&](const uint8_t* d, size_t n) {
      streamed.append(reinterpret_cast<const char*>(d), n);
      return Status::Ok();
    });
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK(streamed == body);
  }
  // Size limit, missing keys.
  Result<std::optional<std::string>> big = c->Get(keys[0], 10);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().message().find("larger than 10 bytes") != std::string::npos);
  CHECK_FALSE(c->Head(f.prefix + "absent")->has_value());
  CHECK_FALSE(c->Get(f.prefix + "absent", 100)->has_value());
  Status gone =
      c->GetToSink(f.prefix + "absent", [](const uint8_t*, size_t) { return Status::Ok(); });
  CHECK(gone.message().find("no such object") != std::string::npos);
  // A sink's error stops the transfer and comes back as is.
  Status stop =
      c->GetToSink(keys[0], [](const uint8_t*, size_t) { return Status::Bundle("enough"); });
  CHECK(stop.message() == "enough");
  CHECK(c->DeleteMany(keys).ok());
  CHECK_FALSE(c->Head(keys[1])->has_value());
}

TEST_CASE("rgw: listing by prefix and delimiter follows continuation tokens") {
  WD_NEED_RGW(f);
  auto c = f.Client();
  std::vector<std::string> keys;
  for (int v = 1; v <= 3; ++v) {
    for (int s = 0; s < 3; ++s) {
      keys.push_back(f.prefix + "m/" + std::to_string(v) + "/shard" + std::to_string(s) + ".bin");
    }
  }
  keys.push_back(f.prefix + "m/weights_manifest.json");
  keys.push_back(f.prefix + "m/a b.json");
  keys.push_back(f.prefix + "other/x");
  for (const std::string& k : keys) REQUIRE(c->Put(k, k, Opts(k)).ok());

  Result<S3ListResult> top = c->List(f.prefix + "m/", "/", 2);  // forces several pages
  REQUIRE_MESSAGE(top.ok(), top.status().message());
  std::vector<std::string> names;
  for (const auto& o : top->objects) names.push_back(o.key);
  CHECK(names ==
        std::vector<std::string>{f.prefix + "m/a b.json", f.prefix + "m/weights_manifest.json"});
  CHECK(top->common_prefixes ==
        std::vector<std::string>{f.prefix + "m/1/", f.prefix + "m/2/", f.prefix + "m/3/"});
  CHECK(top->objects[0].size == (f.prefix + "m/a b.json").size());

  Result<S3ListResult> all = c->List(f.prefix, "", 4);
  REQUIRE(all.ok());
  CHECK(all->objects.size() == keys.size());
  CHECK(all->common_prefixes.empty());

  CHECK(c->DeleteMany(keys).ok());
  CHECK(c->List(f.prefix, "", 1000)->objects.empty());
}

TEST_CASE("rgw: If-None-Match: * creates once; If-Match replaces only the version named") {
  WD_NEED_RGW(f);
  auto c = f.Client();
  const std::string key = f.prefix + "pointer.json";
  S3PutOptions create = Opts("v1");
  create.if_none_match = true;
  Result<S3PutResult> first = c->Put(key, "v1", create);
  REQUIRE_MESSAGE(first.ok(), first.status().message());
  CHECK_FALSE(first->precondition_failed);
  S3PutOptions create2 = Opts("v1 again");
  create2.if_none_match = true;
  Result<S3PutResult> second = c->Put(key, "v1 again", create2);
  REQUIRE_MESSAGE(second.ok(), second.status().message());
  CHECK(second->precondition_failed);
  CHECK(**c->Get(key, 100) == "v1");

  S3PutOptions swap = Opts("v2");
  swap.if_match = first->etag;
  Result<S3PutResult> swapped = c->Put(key, "v2", swap);
  REQUIRE_MESSAGE(swapped.ok(), swapped.status().message());
  CHECK_FALSE(swapped->precondition_failed);
  S3PutOptions stale = Opts("v3");
  stale.if_match = first->etag;  // no longer current
  Result<S3PutResult> lost = c->Put(key, "v3", stale);
  REQUIRE_MESSAGE(lost.ok(), lost.status().message());
  CHECK(lost->precondition_failed);
  CHECK(**c->Get(key, 100) == "v2");
  CHECK(c->Delete(key).ok());
  CHECK(c->Delete(key).ok());  // already gone is fine
}

TEST_CASE("rgw: multipart upload of three parts, listed while open, aborted when abandoned") {
  WD_NEED_RGW(f);
  auto c = f.Client();
  const std::string key = f.prefix + "big.bin";
  const std::vector<std::string> parts = {Bytes(5 << 20, 1), Bytes(5 << 20, 2), Bytes(1 << 20, 3)};
  S3PutOptions o;
  o.content_type = "application/octet-stream";
  Result<std::string> id = c->CreateMultipart(key, o);
  REQUIRE_MESSAGE(id.ok(), id.status().message());
  std::vector<std::string> etags;
  for (size_t i = 0; i < parts.size(); ++i) {
    Result<std::string> e =
        c->UploadPart(key, *id, static_cast<int>(i + 1), parts[i], Sha256Hex(parts[i]));
    REQUIRE_MESSAGE(e.ok(), e.status().message());
    etags.push_back(*e);
  }
  Result<std::vector<S3Upload>> open = c->ListMultipartUploads(f.prefix);
  REQUIRE_MESSAGE(open.ok(), open.status().message());
  REQUIRE(open->size() == 1);
  CHECK((*open)[0].key == key);
  CHECK((*open)[0].upload_id == *id);

  Result<S3PutResult> done = c->CompleteMultipart(key, *id, etags);
  REQUIRE_MESSAGE(done.ok(), done.status().message());
  CHECK(done->etag.find("-3\"") != std::string::npos);
  Result<std::optional<S3ObjectInfo>> h = c->Head(key);
  REQUIRE(h.ok());
  REQUIRE(h->has_value());
  CHECK((*h)->size == (11u << 20));
  CHECK((*h)->etag == done->etag);
  Sha256 whole, streamed;
  for (const auto& p : parts) whole.Update(p);
  REQUIRE(c->GetToSink(key, [&](const uint8_t* d, size_t n) {
             streamed.Update(d, n);
             return Status::Ok();
           }).ok());
  CHECK(streamed.HexDigest() == whole.HexDigest());
  CHECK(c->ListMultipartUploads(f.prefix)->empty());

  // An interrupted upload: found by listing, removed by abort.
  Result<std::string> orphan = c->CreateMultipart(key + ".2", o);
  REQUIRE(orphan.ok());
  REQUIRE(c->UploadPart(key + ".2", *orphan, 1, parts[2], Sha256Hex(parts[2])).ok());
  REQUIRE(c->ListMultipartUploads(f.prefix)->size() == 1);
  CHECK(c->AbortMultipart(key + ".2", *orphan).ok());
  CHECK(c->AbortMultipart(key + ".2", *orphan).ok());  // gone is fine
  CHECK(c->ListMultipartUploads(f.prefix)->empty());
  CHECK_FALSE(c->Head(key + ".2")->has_value());
  CHECK(c->Delete(key).ok());
  S3PutOptions cond;
  cond.if_none_match = true;
  CHECK(c->CreateMultipart(key, cond).status().kind() == ErrorKind::kUsage);
}

TEST_CASE("rgw: DeleteMany removes batches and tolerates keys already gone") {
  WD_NEED_RGW(f);
  auto c = f.Client();
  std::vector<std::string> keys;
  for (int i = 0; i < 25; ++i) keys.push_back(f.prefix + "d/" + std::to_string(i) + " & <x>");
  for (const std::string& k : keys) REQUIRE(c->Put(k, "x", Opts("x")).ok());
  keys.push_back(f.prefix + "d/never-existed");
  Status s = c->DeleteMany(keys);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(c->List(f.prefix, "", 1000)->objects.empty());
  CHECK(c->DeleteMany({}).ok());
}

TEST_CASE("rgw: the server checks our x-amz-content-sha256 against the bytes it receives") {
  WD_NEED_RGW(f);
  auto c = f.Client();
  const std::string key = f.prefix + "corrupt.bin";
  S3PutOptions o = Opts("the bytes we meant");
  Result<S3PutResult> p = c->Put(key, "the bytes that went", o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().kind() == ErrorKind::kEnvironment);
  CHECK(p.status().message() ==
        "s3://" + f.env.bucket + "/" + key + ": HTTP 400 XAmzContentSHA256Mismatch");
  CHECK_FALSE(c->Head(key)->has_value());
  std::string big = Bytes(5 << 20, 9);
  Result<std::string> id = c->CreateMultipart(key, S3PutOptions{});
  REQUIRE(id.ok());
  Result<std::string> part = c->UploadPart(key, *id, 1, big, Sha256Hex("other"));
  REQUIRE_FALSE(part.ok());
  CHECK(part.status().message().find("XAmzContentSHA256Mismatch") != std::string::npos);
  CHECK(c->AbortMultipart(key, *id).ok());
}

TEST_CASE("rgw: wrong credentials and a missing bucket are clear environment errors") {
  WD_NEED_RGW(f);
  const std::string wrong_secret = "wrong-secret-do-not-print-0123456789abcd";
  auto bad_secret = f.Client(f.env.access_key, wrong_secret, f.env.bucket);
  Result<S3PutResult> p = bad_secret->Put(f.prefix + "x", "x", Opts("x"));
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().kind() == ErrorKind::kEnvironment);
  CHECK(p.status().message() == "s3://" + f.env.bucket + "/" + f.prefix +
                                    "x: HTTP 403 SignatureDoesNotMatch (check the secret key, "
                                    "and the region (us-east-1) for " +
                                    f.env.endpoint + ")");
  CHECK(p.status().message().find(wrong_secret) == std::string::npos);
  CHECK(bad_secret->stats().requests == 1);  // a 403 is not retried

  auto bad_key = f.Client("NOSUCHACCESSKEY12345", f.env.secret_key, f.env.bucket);
  Status chk = bad_key->Check();
  CHECK(chk.kind() == ErrorKind::kEnvironment);
  CHECK(chk.message().find("HTTP 403") != std::string::npos);
  Result<S3ListResult> l = bad_key->List("", "/");
  REQUIRE_FALSE(l.ok());
  CHECK(l.status().message().find("HTTP 403 InvalidAccessKeyId (check the access key id for " +
                                  f.env.endpoint + ")") != std::string::npos);
  CHECK(l.status().message().find(f.env.secret_key) == std::string::npos);

  auto no_bucket = f.Client(f.env.access_key, f.env.secret_key, "weightdrop-no-such-bucket");
  Status nb = no_bucket->Check();
  CHECK(nb.kind() == ErrorKind::kEnvironment);
  CHECK(nb.message() ==
        "s3://weightdrop-no-such-bucket: HTTP 404 NoSuchBucket (check the bucket name "
        "'weightdrop-no-such-bucket' and the endpoint " +
            f.env.endpoint + ")");
  Result<std::optional<std::string>> g = no_bucket->Get("k", 10);
  REQUIRE_FALSE(g.ok());
  CHECK(g.status().message().find("NoSuchBucket") != std::string::npos);
  CHECK_FALSE(no_bucket->Delete("k").ok());
}

TEST_CASE("rgw: one client serves many threads at once") {
  WD_NEED_RGW(f);
  auto c = f.Client();
  constexpr int kThreads = 8, kEach = 10;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string key = f.prefix + "t" + std::to_string(t) + "/" + std::to_string(i);
        std::string body = Bytes(4096, static_cast<uint32_t>(t * 100 + i));
        if (!c->Put(key, body, Opts(body)).ok()) ++failures[t];
        Result<std::optional<std::string>> g = c->Get(key, 1 << 20);
        if (!g.ok() || !g->has_value() || **g != body) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) CHECK(failures[t] == 0);
  Result<S3ListResult> l = c->List(f.prefix, "");
  REQUIRE(l.ok());
  CHECK(l->objects.size() == kThreads * kEach);
  std::vector<std::string> keys;
  for (const auto& o : l->objects) keys.push_back(o.key);
  CHECK(c->DeleteMany(keys).ok());
  S3Client::Stats s = c->stats();
  CHECK(s.bytes_uploaded == kThreads * kEach * 4096u);
  CHECK(s.retries == 0);
}

// Kills the shared radosgw for a moment, so only on request:
// WD_TEST_S3_DISRUPT=1, with CEPH_CONF (from rgw.sh's env file) naming its DIR.
TEST_CASE("rgw: requests ride out a radosgw restart by retrying") {
  WD_NEED_RGW(f);
  const char* disrupt = std::getenv("WD_TEST_S3_DISRUPT");
  const char* conf = std::getenv("CEPH_CONF");
  if (!disrupt || std::string(disrupt) != "1" || !conf) {
    MESSAGE("skipped: set WD_TEST_S3_DISRUPT=1 (and CEPH_CONF from rgw.sh's env) to kill radosgw");
    return;
  }
  std::string dir = std::string(conf).substr(0, std::string(conf).rfind('/'));
  std::string rgw_sh = test::SourcePath("../scripts/rgw.sh");
  auto run = [&](const char* what) {
    return std::system(("bash '" + rgw_sh + "' " + what + " '" + dir + "' >/dev/null").c_str());
  };
  auto c = f.Client(f.env.access_key, f.env.secret_key, f.env.bucket, /*max_attempts=*/10);
  REQUIRE(run("kill-rgw") == 0);
  auto once = f.Client(f.env.access_key, f.env.secret_key, f.env.bucket, 1);
  Result<std::optional<S3ObjectInfo>> down = once->Head(f.prefix + "x");
  REQUIRE_FALSE(down.ok());
  CHECK(down.status().kind() == ErrorKind::kEnvironment);
  CHECK(down.status().message().find(": cannot reach " + f.env.endpoint + ": ") !=
        std::string::npos);

  int started = -1;
  std::thread restarter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    started = run("start-rgw");
  });
  const std::string key = f.prefix + "through-restart";
  S3PutOptions o = Opts("survived");
  o.if_none_match = true;
  Result<S3PutResult> p = c->Put(key, "survived", o);
  restarter.join();
  REQUIRE(started == 0);
  REQUIRE_MESSAGE(p.ok(), p.status().message());
  CHECK_FALSE(p->precondition_failed);
  CHECK(c->stats().retries >= 1);
  CHECK(**c->Get(key, 100) == "survived");
  CHECK(c->Delete(key).ok());
}

}  // namespace
}  // namespace wd
