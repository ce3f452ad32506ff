#include "core/s3_store.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "core/manifest.h"
#include "core/model_json.h"
#include "core/sha256.h"
#include "core/version_files.h"

namespace wd {
namespace {

constexpr char kCurrentObject[] = "current";
constexpr char kClaimObject[] = ".claim";
constexpr uint64_t kMaxJsonBytes = 256ull << 20;
constexpr int kMaxVersionAttempts = 1000;
constexpr int kMaxPointerAttempts = 20;
// An incomplete version claimed by another host (or by a process of this
// host that may still run) is left alone this long before it counts as
// abandoned.
constexpr int64_t kAbandonedAfterSeconds = 3600;

const char* ContentTypeOf(const std::string& name) {
  return name.ends_with(".json") ? "application/json" : "application/octet-stream";
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

// Whether process `pid` of this host has ended: no such process, or a
// zombie not yet reaped (its claim is as dead as it is).
bool ProcessGone(int64_t pid) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');  // the command name may hold spaces
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// Runs upload tasks on a few threads; Submit blocks while `limit` tasks are
// queued or running, which bounds the bytes held in memory.
class UploadPool {
 public:
  UploadPool(int threads, int limit) : limit_(std::max(limit, 1)) {
    for (int i = 0; i < std::max(threads, 1); ++i) workers_.emplace_back([this] { Run(); });
  }
  ~UploadPool() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
      queue_.clear();
    }
    cv_.notify_all();
    workers_.clear();  // joins
  }
  // A task is told whether an earlier one failed: then it skips its
  // request but still does its bookkeeping. Once one has failed, Submit
  // queues nothing more and returns that error, so the producer stops at
  // its next shard instead of uploading the rest in vain.
  using Task = std::function<Status(bool failed)>;
  Status Submit(Task task) {
    std::unique_lock<std::mutex> g(mu_);
    room_.wait(g, [&] { return pending_ < limit_ || stop_ || !first_error_.ok(); });
    if (!first_error_.ok()) return first_error_;
    ++pending_;
    queue_.push_back(std::move(task));
    cv_.notify_one();
    return Status::Ok();
  }
  Status first_error() {
    std::lock_guard<std::mutex> g(mu_);
    return first_error_;
  }
  // Waits for every task; the first error, if any.
  Status Wait() {
    std::unique_lock<std::mutex> g(mu_);
    idle_.wait(g, [&] { return pending_ == 0; });
    return first_error_;
  }

 private:
  void Run() {
    for (;;) {
      Task task;
      bool failed = false;
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        task = std::move(queue_.front());
        queue_.pop_front();
        failed = !first_error_.ok();
      }
      // Every queued task runs, even after a failure (skipping its request):
      // a multipart upload's last task waits for all of its parts.
      Status st = task(failed);
      {
        std::lock_guard<std::mutex> g(mu_);
        if (!st.ok() && first_error_.ok()) first_error_ = st;
        --pending_;
      }
      room_.notify_all();
      idle_.notify_all();
    }
  }

  const int limit_;
  std::mutex mu_;
  std::condition_variable cv_, room_, idle_;
  std::deque<Task> queue_;
  int pending_ = 0;
  bool stop_ = false;
  Status first_error_;
  std::vector<std::jthread> workers_;  // last: destroyed (joined) first
};

// Upload buffers, handed back after their request: a fresh multi-MiB
// string per shard costs a page fault per 4 KiB (~20% of a publish's CPU in
// bench/s3.sh); a reused one does not. Keeps at most `max` idle buffers.
class BufferPool {
 public:
  explicit BufferPool(size_t max) : max_(max) {}
  std::string Take() {
    std::lock_guard<std::mutex> g(mu_);
    if (free_.empty()) return std::string();
    std::string b = std::move(free_.back());
    free_.pop_back();
    b.clear();  // keeps its capacity
    return b;
  }
  void Give(std::string b) {
    std::lock_guard<std::mutex> g(mu_);
    if (free_.size() < max_) free_.push_back(std::move(b));
  }

 private:
  const size_t max_;
  std::mutex mu_;
  std::vector<std::string> free_;
};

// Uploads the shards of one version to prefix/M/<v>/ as they are closed.
class S3StagingArea : public StagingArea {
 public:
  S3StagingArea(S3Client& client, std::string key_prefix, const S3StoreOptions& o)
      : client_(client),
        prefix_(std::move(key_prefix)),
        o_(o),
        buffers_(static_cast<size_t>(o.parallel_uploads) + 2),
        pool_(o.parallel_uploads, o.parallel_uploads) {}

  Result<std::unique_ptr<ShardOutput>> NewShard(const std::string& name) override;
  Status Flush() override { return pool_.Wait(); }

 private:
  class Output;
  S3Client& client_;
  std::string prefix_;
  const S3StoreOptions& o_;
  BufferPool buffers_;
  UploadPool pool_;  // last: its threads stop before the buffers go
};

class S3StagingArea::Output : public ShardOutput {
 public:
  Output(S3StagingArea& area, std::string key)
      : area_(area), key_(std::move(key)), buf_(area.buffers_.Take()) {}
  ~Output() override {
    if (multipart_ && !closed_) (void)area_.client_.AbortMultipart(key_, upload_->id);
  }

  Status Append(const uint8_t* data, size_t n) override {
    WD_RETURN_IF_ERROR(area_.pool_.first_error());  // an upload failed: stop encoding
    buf_.append(reinterpret_cast<const char*>(data), n);
    if (!multipart_ && buf_.size() >= area_.o_.multipart_threshold) {
      S3PutOptions po = PutOptions("");
      WD_ASSIGN_OR_RETURN(std::string id, area_.client_.CreateMultipart(key_, po));
      multipart_ = true;
      upload_ = std::make_shared<Upload>();
      upload_->id = std::move(id);
    }
    while (multipart_ && buf_.size() >= area_.o_.part_size) {
      std::string part = area_.buffers_.Take();
      part.assign(buf_, 0, area_.o_.part_size);
      buf_.erase(0, area_.o_.part_size);
      WD_RETURN_IF_ERROR(SubmitPart(std::move(part)));
    }
    return Status::Ok();
  }

  Status Close(const std::string& sha256_hex) override {
    closed_ = true;
    if (!multipart_) {
      return area_.pool_.Submit([&client = area_.client_, &buffers = area_.buffers_, key = key_,
                                 body = std::move(buf_),
                                 po = PutOptions(sha256_hex)](bool failed) mutable -> Status {
        Status st = failed ? Status::Ok() : client.Put(key, body, po).status();
        buffers.Give(std::move(body));
        return st;
      });
    }
    if (!buf_.empty() || upload_->parts == 0) WD_RETURN_IF_ERROR(SubmitPart(std::move(buf_)));
    // Parts were submitted first: by the time a thread takes this task the
    // parts are running or done, so waiting for them cannot deadlock.
    return area_.pool_.Submit(
        [&client = area_.client_, key = key_, up = upload_](bool failed) -> Status {
          std::unique_lock<std::mutex> g(up->mu);
          up->cv.wait(g, [&] { return up->done == up->parts; });
          if (failed && up->error.ok()) up->error = Status::Environment(key + ": upload abandoned");
          if (!up->error.ok()) {
            (void)client.AbortMultipart(key, up->id);
            return up->error;
          }
          std::vector<std::string> etags = up->etags;
          g.unlock();
          Result<S3PutResult> r = client.CompleteMultipart(key, up->id, etags);
          if (!r.ok()) {
            (void)client.AbortMultipart(key, up->id);
            return r.status();
          }
          return Status::Ok();
        });
  }

 private:
  struct Upload {
    std::string id;
    std::mutex mu;
    std::condition_variable cv;
    int parts = 0, done = 0;
    std::vector<std::string> etags;
    Status error;
  };

  S3PutOptions PutOptions(const std::string& sha) const {
    return S3PutOptions{.content_type = ContentTypeOf(key_),
                        .cache_control = area_.o_.version_cache_control,
                        .sha256_hex = sha,
                        .if_none_match = false,
                        .if_match = ""};
  }

  Status SubmitPart(std::string body) {
    int number;
    {
      std::lock_guard<std::mutex> g(upload_->mu);
      number = ++upload_->parts;
      upload_->etags.resize(static_cast<size_t>(number));
    }
    Status st = area_.pool_.Submit([&client = area_.client_, &buffers = area_.buffers_, key = key_,
                                    up = upload_, number,
                                    body = std::move(body)](bool failed) mutable -> Status {
      Result<std::string> etag = Status::Environment(key + ": upload abandoned");
      if (!failed) etag = client.UploadPart(key, up->id, number, body, Sha256Hex(body));
      buffers.Give(std::move(body));
      std::lock_guard<std::mutex> g(up->mu);
      if (etag.ok()) {
        up->etags[static_cast<size_t>(number - 1)] = *etag;
      } else if (up->error.ok()) {
        up->error = etag.status();
      }
      ++up->done;
      up->cv.notify_all();
      return Status::Ok();  // the completing task reports it
    });
    if (!st.ok()) {  // not queued: count it as done, failed
      std::lock_guard<std::mutex> g(upload_->mu);
      if (upload_->error.ok()) upload_->error = st;
      ++upload_->done;
    }
    return st;
  }

  S3StagingArea& area_;
  std::string key_;
  std::string buf_;
  bool multipart_ = false;
  bool closed_ = false;
  std::shared_ptr<Upload> upload_;
};

Result<std::unique_ptr<ShardOutput>> S3StagingArea::NewShard(const std::string& name) {
  return std::unique_ptr<ShardOutput>(new Output(*this, prefix_ + name));
}

// The version a pointer object names: `current` holds the number; the
// manifest and model.json name it as the first segment of their paths. 0:
// not known (absent, or a manifest with no shards).
int PointerVersion(const std::string& name, const std::string& text) {
  if (name == kCurrentObject) {
    std::string t = text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return ParseVersion(t).value_or(0);
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  const nlohmann::json* groups = &j;
  if (j.is_object()) {
    const auto it = j.find("weightsManifest");
    if (it == j.end()) return 0;
    groups = &*it;
  }
  if (!groups->is_array()) return 0;
  for (const auto& g : *groups) {
    if (!g.is_object() || !g.contains("paths") || !g["paths"].is_array()) continue;
    for (const auto& p : g["paths"]) {
      if (!p.is_string()) continue;
      const std::string s = p.get<std::string>();
      const size_t slash = s.find('/');
      if (slash != std::string::npos) return ParseVersion(s.substr(0, slash)).value_or(0);
    }
  }
  return 0;
}

// The versions this process is writing, by model location: the claims of
// this pid that RemoveAbandoned must leave alone. Process-wide, as two
// store objects of one target may exist at once (the daemon sets stores up
// anew at a reload while publishes of the old ones still run).
class InFlight {
 public:
  static void Add(const std::string& where, int v) {
    std::lock_guard<std::mutex> g(mu());
    set().insert({where, v});
  }
  static void Remove(const std::string& where, int v) {
    std::lock_guard<std::mutex> g(mu());
    set().erase({where, v});
  }
  static bool Has(const std::string& where, int v) {
    std::lock_guard<std::mutex> g(mu());
    return set().count({where, v}) != 0;
  }

 private:
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::set<std::pair<std::string, int>>& set() {
    static std::set<std::pair<std::string, int>> s;
    return s;
  }
};

// A model's objects, as one listing reads them.
struct ModelListing {
  std::set<int> complete;                        // publish.json present
  std::map<int, std::vector<std::string>> keys;  // every key under <v>/
  std::set<int> claimed;                         // .claim present
};

class S3Store : public VersionStore {
 public:
  S3Store(std::unique_ptr<S3Client> client, S3Url url, S3StoreOptions o)
      : client_(std::move(client)), url_(std::move(url)), o_(std::move(o)) {
    where_ = "s3://" + url_.bucket + (url_.prefix.empty() ? "" : "/" + url_.prefix);
    public_base_ = o_.public_url;
    if (public_base_.empty()) {
      Result<S3Settings> s = ResolveSettings(o_.s3);
      std::string endpoint = s.ok() ? s->endpoint : "";
      while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
      const size_t scheme = endpoint.find("://");
      if (s.ok() && !s->path_style && scheme != std::string::npos) {
        endpoint.insert(scheme + 3, url_.bucket + ".");
      } else {
        endpoint += "/" + url_.bucket;
      }
      public_base_ = endpoint + (url_.prefix.empty() ? "" : "/" + UriEncodeKey(url_.prefix));
    }
  }

  std::string PointerUrl(const std::string& model) const override {
    return public_base_ + "/" + model + "/" + kManifestFile;
  }

  const std::string& where() const override { return where_; }
  S3Client& client() { return *client_; }

  Result<PublishResult> Publish(const PublishRequest& req, const Producer& produce) override;
  Result<int> Rollback(const std::string& model, std::optional<int> to) override;
  Status RemoveLeftovers() override;
  Result<std::vector<int>> ListVersions(const std::string& model) override {
    WD_RETURN_IF_ERROR(ValidateModelName(model));
    WD_ASSIGN_OR_RETURN(ModelListing l, List(model));
    return std::vector<int>(l.complete.begin(), l.complete.end());
  }
  Result<std::optional<int>> CurrentVersion(const std::string& model) override {
    WD_RETURN_IF_ERROR(ValidateModelName(model));
    WD_ASSIGN_OR_RETURN(std::optional<std::string> text,
                        client_->Get(ModelKey(model, kCurrentObject), 64));
    if (!text) return std::optional<int>();
    const int v = PointerVersion(kCurrentObject, *text);
    if (v == 0) {
      return Status::Environment(ModelLocation(model) + "/current: holds '" + *text +
                                 "', not a version number");
    }
    return std::optional<int>(v);
  }
  std::optional<SourceRecord> CurrentSource(const std::string& model) override {
    Result<std::optional<int>> cur = CurrentVersion(model);
    if (!cur.ok() || !*cur) return std::nullopt;
    Result<std::optional<std::string>> text =
        client_->Get(VersionKey(model, **cur, kProvenanceFile), kMaxJsonBytes);
    if (!text.ok() || !*text) return std::nullopt;
    return SourceRecordOf(**text);
  }

  Result<std::vector<std::string>> ListModels() override {
    const std::string prefix = url_.prefix.empty() ? "" : url_.prefix + "/";
    WD_ASSIGN_OR_RETURN(S3ListResult r, client_->List(prefix, "/"));
    std::vector<std::string> models;
    for (const std::string& p : r.common_prefixes) {
      std::string m = p.substr(prefix.size());
      if (!m.empty() && m.back() == '/') m.pop_back();
      if (ValidateModelName(m).ok()) models.push_back(m);
    }
    std::sort(models.begin(), models.end());
    return models;
  }

  std::string ModelKey(const std::string& model, const std::string& name) const {
    return (url_.prefix.empty() ? "" : url_.prefix + "/") + model + "/" + name;
  }
  std::string VersionKey(const std::string& model, int v, const std::string& name) const {
    return ModelKey(model, std::to_string(v) + "/" + name);
  }
  std::string VersionLocation(const std::string& model, int v) const {
    return ModelLocation(model) + "/" + std::to_string(v);
  }

  Result<ModelListing> List(const std::string& model);

  // What the pointers hold when version v is current.
  struct Pointers {
    std::string manifest;
    std::optional<std::string> model_json;
    int version = 0;
  };
  Result<Pointers> PointersForVersion(const std::string& model, int v);

 private:
  std::mutex& ModelMutex(const std::string& model) {
    std::lock_guard<std::mutex> g(mutexes_mu_);
    return mutexes_[model];
  }
  Result<int> ClaimVersion(const std::string& model, int after);
  Status PutVersionFile(const std::string& model, int v, const std::string& name,
                        const std::string& body);
  // Moves the pointers to p.version. `forward_only`: a pointer already at a
  // newer version stays (another writer won); the result says which
  // version the `current` pointer holds afterwards.
  Result<int> MovePointers(const std::string& model, const Pointers& p, bool forward_only);
  Status DeleteVersion(const std::string& model, int v, const ModelListing& l);
  // Incomplete versions whose writer is gone; `keep` are this process's own.
  void RemoveAbandoned(const std::string& model, const ModelListing& l,
                       std::vector<std::string>* w);
  void ApplyRetention(const std::string& model, int keep, int protect, PublishResult* r);
  std::optional<Result<PublishResult>> ReuseExisting(const std::string& model,
                                                     const PublishRequest& req,
                                                     PublishResult result);

  std::unique_ptr<S3Client> client_;
  S3Url url_;
  S3StoreOptions o_;
  std::string where_;
  std::string public_base_;  // URL of the prefix, for clients
  std::mutex mutexes_mu_;
  std::map<std::string, std::mutex> mutexes_;
  std::once_flag leftovers_once_;
  Status leftovers_status_;
};

Result<ModelListing> S3Store::List(const std::string& model) {
  const std::string prefix = ModelKey(model, "");
  WD_ASSIGN_OR_RETURN(S3ListResult r, client_->List(prefix, ""));
  ModelListing l;
  for (const S3ObjectInfo& o : r.objects) {
    const std::string rest = o.key.substr(prefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string::npos) continue;  // a pointer
    const std::optional<int> v = ParseVersion(rest.substr(0, slash));
    if (!v) continue;
    const std::string name = rest.substr(slash + 1);
    l.keys[*v].push_back(o.key);
    if (name == kProvenanceFile) l.complete.insert(*v);
    if (name == kClaimObject) l.claimed.insert(*v);
  }
  return l;
}

Result<int> S3Store::ClaimVersion(const std::string& model, int after) {
  const std::string body = nlohmann::json{{"host", HostName()},
                                          {"pid", static_cast<int64_t>(getpid())},
                                          {"claimed", static_cast<int64_t>(std::time(nullptr))}}
                               .dump() +
                           "\n";
  for (int v = after + 1, attempt = 0; attempt < kMaxVersionAttempts; ++v, ++attempt) {
    S3PutOptions po{.content_type = "application/json",
                    .cache_control = "no-store",
                    .sha256_hex = Sha256Hex(body),
                    .if_none_match = true,
                    .if_match = ""};
    InFlight::Add(ModelLocation(model), v);
    Result<S3PutResult> r = client_->Put(VersionKey(model, v, kClaimObject), body, po);
    if (r.ok() && !r->precondition_failed) return v;
    InFlight::Remove(ModelLocation(model), v);
    if (!r.ok()) return r.status();
  }
  return Status::Environment(ModelLocation(model) + ": could not claim a version number in " +
                             std::to_string(kMaxVersionAttempts) + " attempts");
}

Status S3Store::PutVersionFile(const std::string& model, int v, const std::string& name,
                               const std::string& body) {
  S3PutOptions po{.content_type = ContentTypeOf(name),
                  .cache_control = o_.version_cache_control,
                  .sha256_hex = Sha256Hex(body),
                  .if_none_match = false,
                  .if_match = ""};
  return client_->Put(VersionKey(model, v, name), body, po).status();
}

Result<S3Store::Pointers> S3Store::PointersForVersion(const std::string& model, int v) {
  const std::string where = VersionLocation(model, v);
  WD_ASSIGN_OR_RETURN(std::optional<std::string> text,
                      client_->Get(VersionKey(model, v, kManifestFile), kMaxJsonBytes));
  if (!text) return Status::Environment(where + ": incomplete, it has no " + kManifestFile);
  WD_ASSIGN_OR_RETURN(Manifest manifest, ParseManifest(*text, where + "/" + kManifestFile));
  const Manifest qualified = WithPathPrefix(manifest, std::to_string(v) + "/");
  Pointers p{.manifest = ManifestToJson(qualified), .model_json = std::nullopt, .version = v};
  WD_ASSIGN_OR_RETURN(std::optional<std::string> topology,
                      client_->Get(VersionKey(model, v, kModelFile), kMaxJsonBytes));
  if (topology) {
    const std::string at = where + "/" + kModelFile;
    Status valid = CheckModelJson(*topology, at);
    if (!valid.ok()) return Status::Environment(valid.message());
    WD_ASSIGN_OR_RETURN(p.model_json, ModelJsonWith(*topology, qualified, at));
  }
  return p;
}

Result<int> S3Store::MovePointers(const std::string& model, const Pointers& p, bool forward_only) {
  // model.json first and current last, as in a serve folder.
  const std::string current_text = std::to_string(p.version) + "\n";
  const std::optional<std::string> manifest = p.manifest, current = current_text;
  int now_current = p.version;
  for (const auto& [name, body] :
       {std::pair<const char*, const std::optional<std::string>*>{kModelFile, &p.model_json},
        {kManifestFile, &manifest},
        {kCurrentObject, &current}}) {
    const std::string key = ModelKey(model, name);
    for (int attempt = 1;; ++attempt) {
      std::string etag;
      WD_ASSIGN_OR_RETURN(std::optional<std::string> existing,
                          client_->Get(key, kMaxJsonBytes, &etag));
      const int at = existing ? PointerVersion(name, *existing) : 0;
      if (forward_only && at > p.version) {
        if (std::string(name) == kCurrentObject) now_current = at;
        break;  // a newer version is there: never move back
      }
      if (!*body) {  // this version has no model.json: remove an older one
        if (existing) WD_RETURN_IF_ERROR(client_->Delete(key));
        break;
      }
      S3PutOptions po{
          .content_type = std::string(name) == kCurrentObject ? "text/plain" : "application/json",
          .cache_control = o_.pointer_cache_control,
          .sha256_hex = Sha256Hex(**body),
          .if_none_match = !existing,
          .if_match = existing ? etag : ""};
      WD_ASSIGN_OR_RETURN(S3PutResult r, client_->Put(key, **body, po));
      if (!r.precondition_failed) break;
      if (attempt == kMaxPointerAttempts) {
        return Status::Environment(ModelLocation(model) + "/" + name +
                                   ": changed by another writer on every one of " +
                                   std::to_string(attempt) + " attempts to replace it");
      }
    }
  }
  return now_current;
}

Status S3Store::DeleteVersion(const std::string& model, int v, const ModelListing& l) {
  std::vector<std::string> keys;
  if (auto it = l.keys.find(v); it != l.keys.end()) keys = it->second;
  // publish.json first: a half-deleted version must not look complete. The
  // claim last, so its number is not taken again before the rest is gone.
  std::stable_partition(keys.begin(), keys.end(),
                        [&](const std::string& k) { return k.ends_with(kProvenanceFile); });
  std::stable_partition(keys.begin(), keys.end(),
                        [&](const std::string& k) { return !k.ends_with(kClaimObject); });
  const std::string claim = VersionKey(model, v, kClaimObject);
  const std::string provenance = VersionKey(model, v, kProvenanceFile);
  if (std::find(keys.begin(), keys.end(), provenance) != keys.end()) {
    WD_RETURN_IF_ERROR(client_->Delete(provenance));
  }
  std::vector<std::string> rest;
  for (const auto& k : keys) {
    if (k != provenance && k != claim) rest.push_back(k);
  }
  WD_RETURN_IF_ERROR(client_->DeleteMany(rest));
  // Unfinished multipart uploads under the version.
  Result<std::vector<S3Upload>> uploads =
      client_->ListMultipartUploads(ModelKey(model, std::to_string(v) + "/"));
  if (uploads.ok()) {
    for (const S3Upload& u : *uploads) (void)client_->AbortMultipart(u.key, u.upload_id);
  }
  return client_->Delete(claim);
}

void S3Store::RemoveAbandoned(const std::string& model, const ModelListing& l,
                              std::vector<std::string>* warnings) {
  const std::string host = HostName();
  for (const auto& [v, keys] : l.keys) {
    if (l.complete.count(v) != 0) continue;
    if (InFlight::Has(ModelLocation(model), v)) continue;  // ours, being written
    bool abandoned = l.claimed.count(v) == 0;              // shards without a claim: debris
    if (!abandoned) {
      Result<std::optional<std::string>> text =
          client_->Get(VersionKey(model, v, kClaimObject), 4096);
      if (!text.ok() || !*text) continue;
      const nlohmann::json j = nlohmann::json::parse(**text, nullptr, false);
      const std::string by = j.is_object() ? j.value("host", "") : "";
      const int64_t pid = j.is_object() ? j.value("pid", int64_t{0}) : 0;
      const int64_t at = j.is_object() ? j.value("claimed", int64_t{0}) : 0;
      const bool gone_here = by == host && pid > 0 && (pid == getpid() || ProcessGone(pid));
      abandoned = gone_here || std::time(nullptr) - at > kAbandonedAfterSeconds;
    }
    if (!abandoned) continue;
    Status st = DeleteVersion(model, v, l);
    if (!st.ok() && warnings != nullptr) {
      warnings->push_back("removing the incomplete version " + VersionLocation(model, v) + ": " +
                          st.message());
    }
  }
}

void S3Store::ApplyRetention(const std::string& model, int keep, int protect, PublishResult* r) {
  Result<ModelListing> l = List(model);
  Result<std::optional<int>> cur = CurrentVersion(model);
  if (!l.ok() || !cur.ok()) {
    r->warnings.push_back("retention skipped: " + (l.ok() ? cur.status() : l.status()).message());
    return;
  }
  const std::vector<int> versions(l->complete.begin(), l->complete.end());
  const size_t n = versions.size();
  for (size_t i = 0; i + static_cast<size_t>(keep) < n; ++i) {
    const int v = versions[i];
    if (v == protect || (*cur && v == **cur)) continue;
    Status st = DeleteVersion(model, v, *l);
    if (!st.ok()) {
      r->warnings.push_back("retention: " + st.message());
      continue;
    }
    r->removed.push_back(v);
  }
}

std::optional<Result<PublishResult>> S3Store::ReuseExisting(const std::string& model,
                                                            const PublishRequest& req,
                                                            PublishResult result) {
  if (!req.skip_if_unchanged || req.source_sha256.empty()) return std::nullopt;
  Result<std::optional<int>> cur = CurrentVersion(model);
  if (!cur.ok()) return Result<PublishResult>(cur.status());
  Result<ModelListing> l = List(model);
  if (!l.ok()) return Result<PublishResult>(l.status());
  auto same = [&](int v) {
    Result<std::optional<std::string>> text =
        client_->Get(VersionKey(model, v, kProvenanceFile), kMaxJsonBytes);
    if (!text.ok() || !*text) return false;
    return RecordsSameSource(**text, VersionLocation(model, v) + "/" + kProvenanceFile, req,
                             &result.warnings);
  };
  if (*cur && same(**cur)) {
    result.version = **cur;
    result.version_dir = VersionLocation(model, **cur);
    result.unchanged = true;
    return Result<PublishResult>(std::move(result));
  }
  // A complete version newer than current from this bundle: a publish that
  // stopped before its pointers moved. Make it current.
  if (l->complete.empty()) return std::nullopt;
  const int newest = *l->complete.rbegin();
  if ((*cur && **cur >= newest) || !same(newest)) return std::nullopt;
  Result<Pointers> p = PointersForVersion(model, newest);
  if (!p.ok()) return Result<PublishResult>(p.status());
  Result<int> now = MovePointers(model, *p, /*forward_only=*/true);
  if (!now.ok()) return Result<PublishResult>(now.status());
  result.version = newest;
  result.version_dir = VersionLocation(model, newest);
  result.warnings.push_back("version " + std::to_string(newest) +
                            " (newer than current) was already written from this bundle, "
                            "likely by an interrupted publish: made it current");
  ApplyRetention(model, req.keep_versions, newest, &result);
  return Result<PublishResult>(std::move(result));
}

Result<PublishResult> S3Store::Publish(const PublishRequest& req, const Producer& produce) {
  WD_RETURN_IF_ERROR(ValidateModelName(req.model));
  if (req.keep_versions < 1) {
    return Status::Config("keep_versions must be at least 1, got " +
                          std::to_string(req.keep_versions));
  }
  const std::string& model = req.model;
  std::lock_guard<std::mutex> model_lock(ModelMutex(model));
  PublishResult result;
  WD_ASSIGN_OR_RETURN(ModelListing before, List(model));
  RemoveAbandoned(model, before, &result.warnings);
  if (auto reused = ReuseExisting(model, req, result)) return std::move(*reused);

  const int newest = before.keys.empty() ? 0 : before.keys.rbegin()->first;
  WD_ASSIGN_OR_RETURN(const int v, ClaimVersion(model, newest));
  auto release = [&] { InFlight::Remove(ModelLocation(model), v); };
  auto abandon = [&](const Status& why) -> Result<PublishResult> {
    Result<ModelListing> now = List(model);
    if (now.ok()) (void)DeleteVersion(model, v, *now);
    release();
    return why;
  };

  Result<StagedContent> content = [&]() -> Result<StagedContent> {
    S3StagingArea area(*client_, VersionKey(model, v, ""), o_);
    Result<StagedContent> c = produce(area);
    Status flushed = area.Flush();  // every upload acknowledged (or failed)
    if (c.ok() && !flushed.ok()) return flushed;
    return c;
  }();
  if (!content.ok()) return abandon(content.status());
  PublishRequest effective = req;
  if (effective.source_sha256.empty() && !content->source_sha256.empty()) {
    effective.source_sha256 = content->source_sha256;
    if (auto reused = ReuseExisting(model, effective, result)) {
      (void)abandon(Status::Ok());
      return std::move(*reused);
    }
  }
  if (content->cancelled) {
    return abandon(Status::Environment(ModelLocation(model) +
                                       ": the producer stopped early but the bundle is "
                                       "not the current version's; publish again"));
  }
  // The version's own files; publish.json last marks it complete.
  const std::string manifest_json = ManifestToJson(content->manifest);
  Status st = PutVersionFile(model, v, kManifestFile, manifest_json);
  if (st.ok() && content->model_json) {
    const std::string where = req.source_path.empty() ? VersionLocation(model, v) : req.source_path;
    Result<std::string> mj = ModelJsonWith(*content->model_json, content->manifest, where);
    st = mj.ok() ? PutVersionFile(model, v, kModelFile, *mj) : mj.status();
  }
  if (st.ok()) {
    st = PutVersionFile(model, v, kProvenanceFile,
                        ProvenanceJson(effective, v, *content, manifest_json));
  }
  if (!st.ok()) return abandon(st);
  release();

  const Manifest qualified = WithPathPrefix(content->manifest, std::to_string(v) + "/");
  Pointers p{.manifest = ManifestToJson(qualified), .model_json = std::nullopt, .version = v};
  if (content->model_json) {
    WD_ASSIGN_OR_RETURN(p.model_json,
                        ModelJsonWith(*content->model_json, qualified, req.source_path));
  }
  Result<int> now = MovePointers(model, p, /*forward_only=*/true);
  if (!now.ok()) {
    return now.status().WithContext(ModelLocation(model) + ": version " + std::to_string(v) +
                                    " was written, but moving the pointers to it failed: "
                                    "each names this version or the previous one, both "
                                    "complete; publishing again realigns them");
  }
  if (*now != v) {
    result.warnings.push_back("version " + std::to_string(v) + " was written, but version " +
                              std::to_string(*now) +
                              ", published meanwhile by another writer, stays current");
  }
  result.version = v;
  result.version_dir = VersionLocation(model, v);
  ApplyRetention(model, req.keep_versions, v, &result);
  return result;
}

Result<int> S3Store::Rollback(const std::string& model, std::optional<int> to) {
  WD_RETURN_IF_ERROR(ValidateModelName(model));
  std::lock_guard<std::mutex> model_lock(ModelMutex(model));
  WD_ASSIGN_OR_RETURN(ModelListing l, List(model));
  const std::vector<int> versions(l.complete.begin(), l.complete.end());
  if (versions.empty() && l.keys.empty()) {
    return Status::Usage(ModelLocation(model) + ": no such model");
  }
  Result<std::optional<int>> cur = CurrentVersion(model);
  if (!cur.ok() && !to) return cur.status();
  WD_ASSIGN_OR_RETURN(int target, PickRollbackTarget(ModelLocation(model), versions,
                                                     cur.ok() ? *cur : std::nullopt, to));
  WD_ASSIGN_OR_RETURN(Pointers p, PointersForVersion(model, target));
  WD_RETURN_IF_ERROR(MovePointers(model, p, /*forward_only=*/false).status());
  return target;
}

Status S3Store::RemoveLeftovers() {
  // Once per store: a listing of every model is a request per model. Each
  // publish then cleans up its own model's leftovers.
  std::call_once(leftovers_once_, [&] {
    Result<std::vector<std::string>> models = ListModels();
    if (!models.ok()) {
      leftovers_status_ = models.status();
      return;
    }
    for (const std::string& model : *models) {
      std::lock_guard<std::mutex> model_lock(ModelMutex(model));
      Result<ModelListing> l = List(model);
      if (l.ok()) RemoveAbandoned(model, *l, nullptr);
    }
  });
  return leftovers_status_;
}

}  // namespace

Result<std::unique_ptr<VersionStore>> NewS3Store(const std::string& url,
                                                 const S3StoreOptions& options) {
  WD_ASSIGN_OR_RETURN(S3Url u, ParseS3Url(url));
  WD_ASSIGN_OR_RETURN(std::unique_ptr<S3Client> client, S3Client::Create(options.s3, u.bucket));
  return std::unique_ptr<VersionStore>(new S3Store(std::move(client), std::move(u), options));
}

std::optional<S3Client::Stats> S3StoreStats(VersionStore& store) {
  auto* s3 = dynamic_cast<S3Store*>(&store);
  if (s3 == nullptr) return std::nullopt;
  return s3->client().stats();
}

Result<VerifyReport> VerifyS3(const std::string& target, const S3StoreOptions& options) {
  WD_ASSIGN_OR_RETURN(S3Url u, ParseS3Url(target));
  // s3://bucket/prefix/M or s3://bucket/prefix/M/V.
  std::vector<std::string> segs;
  for (size_t at = 0; at <= u.prefix.size();) {
    const size_t slash = u.prefix.find('/', at);
    const size_t end = slash == std::string::npos ? u.prefix.size() : slash;
    if (end > at) segs.push_back(u.prefix.substr(at, end - at));
    at = end + 1;
  }
  std::optional<int> version;
  if (segs.size() >= 2 && ParseVersion(segs.back())) {
    version = ParseVersion(segs.back());
    segs.pop_back();
  }
  if (segs.empty()) return Status::Usage(target + ": name a model: s3://bucket/prefix/MODEL[/V]");
  const std::string model = segs.back();
  segs.pop_back();
  std::string root = "s3://" + u.bucket;
  for (const auto& s : segs) root += "/" + s;
  WD_ASSIGN_OR_RETURN(std::unique_ptr<VersionStore> base, NewS3Store(root, options));
  auto& store = static_cast<S3Store&>(*base);
  WD_RETURN_IF_ERROR(ValidateModelName(model));
  WD_ASSIGN_OR_RETURN(std::optional<int> cur, store.CurrentVersion(model));
  if (!version) {
    if (!cur) return Status::Usage(store.ModelLocation(model) + ": nothing is current");
    version = cur;
  }
  VerifyReport report;
  report.version_dir = store.VersionLocation(model, *version);
  S3Client& c = store.client();
  WD_ASSIGN_OR_RETURN(std::optional<std::string> record,
                      c.Get(store.VersionKey(model, *version, kProvenanceFile), kMaxJsonBytes));
  if (!record) return Status::Usage(report.version_dir + ": no such complete version");
  const nlohmann::json j = nlohmann::json::parse(*record, nullptr, false);
  if (!j.is_object() || !j.contains("shards") || !j["shards"].is_array()) {
    report.problems.push_back(report.version_dir + "/publish.json: no shards list");
    return report;
  }
  WD_ASSIGN_OR_RETURN(std::optional<std::string> manifest,
                      c.Get(store.VersionKey(model, *version, kManifestFile), kMaxJsonBytes));
  if (!manifest) {
    report.problems.push_back(report.version_dir + "/weights_manifest.json is missing");
  } else if (j.value("manifest_sha256", "") != Sha256Hex(*manifest)) {
    report.problems.push_back(report.version_dir +
                              "/weights_manifest.json does not have the recorded sha256");
  }
  for (const auto& s : j["shards"]) {
    const std::string name = s.value("name", "");
    const uint64_t bytes = s.value("bytes", uint64_t{0});
    const std::string sha = s.value("sha256", "");
    Sha256 h;
    uint64_t got = 0;
    Status st =
        c.GetToSink(store.VersionKey(model, *version, name), [&](const uint8_t* d, size_t n) {
          h.Update(d, n);
          got += n;
          return Status::Ok();
        });
    ++report.shards_checked;
    if (!st.ok()) {
      report.problems.push_back(report.version_dir + "/" + name + ": " + st.message());
    } else if (got != bytes) {
      report.problems.push_back(report.version_dir + "/" + name + ": " + std::to_string(got) +
                                " bytes, publish.json says " + std::to_string(bytes));
    } else if (h.HexDigest() != sha) {
      report.problems.push_back(report.version_dir + "/" + name +
                                ": sha256 differs from publish.json's");
    }
  }
  // The pointers, when this version is current: they must name it.
  if (cur && *cur == *version && manifest) {
    Result<S3Store::Pointers> want = store.PointersForVersion(model, *version);
    if (!want.ok()) {
      report.problems.push_back(want.status().message());
      return report;
    }
    WD_ASSIGN_OR_RETURN(std::optional<std::string> pointer,
                        c.Get(store.ModelKey(model, kManifestFile), kMaxJsonBytes));
    if (!pointer || *pointer != want->manifest) {
      report.problems.push_back(store.ModelLocation(model) +
                                "/weights_manifest.json does not name version " +
                                std::to_string(*version) + "'s shards");
    }
    WD_ASSIGN_OR_RETURN(std::optional<std::string> model_json,
                        c.Get(store.ModelKey(model, kModelFile), kMaxJsonBytes));
    if (want->model_json && model_json != want->model_json) {
      report.problems.push_back(store.ModelLocation(model) + "/model.json is not version " +
                                std::to_string(*version) + "'s with its weightsManifest");
    } else if (!want->model_json && model_json) {
      report.problems.push_back(store.ModelLocation(model) + "/model.json exists but version " +
                                std::to_string(*version) + " has none");
    }
  }
  return report;
}

}  // namespace wd
