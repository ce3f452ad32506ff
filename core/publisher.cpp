#include "core/publisher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <random>
#include <set>
#include <utility>

#include "core/model_json.h"
#include "core/sha256.h"
#include "core/version_files.h"

// Crash and failure behaviour (docs/formats.md, "Version folder"):
// - Before the staging folder is renamed to S/M/<v>, a failure removes the
//   staging folder and leaves everything else untouched; a crash leaves only
//   S/.staging/<M>.<pid>.<rand>, which RemoveLeftoverStaging deletes.
// - After the rename, the pointers (S/M/model.json, S/M/weights_manifest.json,
//   S/M/current) are replaced one by one, each atomically. If one fails, the
//   previous pointers are written back and the error is returned: the new
//   version folder stays, unnamed by any pointer. That is harmless (clients
//   only find versions through the pointers) and retention removes it in
//   time. After a crash at that point each pointer names either the old or
//   the new version, each complete; the next publish or rollback realigns
//   them and removes the pointer temporaries the crash left.
// - Retention keeps the newest keep_versions and the new current. It first renames a doomed version
// into S/.staging, so a crash
//   mid-delete never leaves a half-deleted version where rollback looks.
// - Publish and Rollback of one model hold an flock on S/M/.lock, so the CLI
//   and the daemon never interleave pointer updates; RemoveLeftoverStaging
//   skips the staging folders of a model whose lock is held.

namespace wd {

namespace {

constexpr uint64_t kMaxJsonBytes = 256ull << 20;
constexpr int kMaxVersionAttempts = 1000;
constexpr char kCurrentLink[] = "current";
constexpr char kCurrentTmpPrefix[] = ".current.tmp-";

std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string Parent(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The paths of one model in one serve root.
struct Layout {
  Layout(std::string serve_root, const std::string& m) : root(std::move(serve_root)), model(m) {
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    staging = Join(root, ".staging");
    model_dir = Join(root, model);
  }
  std::string Version(int v) const { return Join(model_dir, std::to_string(v)); }
  std::string In(const std::string& name) const { return Join(model_dir, name); }
  // A fresh name under S/.staging: "<M>.<pid>.<random>".
  std::string NewStagingName() const {
    return Join(staging, model + "." + std::to_string(::getpid()) + "." + RandomHexSuffix());
  }

  std::string root, model, staging, model_dir;
};

// The exclusive lock on S/M/.lock that serialises publish and rollback of
// one model across threads and processes (the CLI next to the daemon).
// Released when destroyed, or by the kernel if the process dies.
class ModelLock {
 public:
  // Waits for the lock when `wait`; otherwise yields nullptr while another
  // publisher holds it.
  // A failed first publish removes the model folder with its lock file
  // (RemoveIfUnpublished): with `wait` the folder is made anew.
  static Result<std::unique_ptr<ModelLock>> Acquire(FileSystem& fs, const std::string& model_dir,
                                                    bool wait) {
    const std::string path = Join(model_dir, ".lock");
    for (int attempt = 0;; ++attempt) {
      Result<std::unique_ptr<FileLock>> lock = fs.LockFile(path, wait);
      if (!lock.ok() && lock.status().sys_errno() == ENOENT && wait && attempt < kMaxAttempts) {
        Status made = fs.MakeDir(model_dir);
        if (!made.ok() && !fs.IsDirectory(model_dir)) return made;
        continue;
      }
      if (!lock.ok()) return lock.status();
      if (*lock == nullptr) return std::unique_ptr<ModelLock>();
      return std::unique_ptr<ModelLock>(new ModelLock(std::move(*lock)));
    }
  }

 private:
  static constexpr int kMaxAttempts = 100;
  explicit ModelLock(std::unique_ptr<FileLock> lock) : lock_(std::move(lock)) {}
  std::unique_ptr<FileLock> lock_;
};

// After a failed publish of a model that had no folder before: remove the
// folder again if it holds nothing but the lock file, so a bundle that never
// published leaves no empty serve/<model>/ behind. REQUIRES: the model lock
// (the lock file is unlinked before the lock is released; see Acquire).
void RemoveIfUnpublished(FileSystem& fs, const Layout& l) {
  Result<std::vector<std::string>> names = fs.ListDir(l.model_dir);
  if (!names.ok() || names->size() != 1 || (*names)[0] != ".lock") return;
  if (fs.Remove(l.In(".lock")).ok() && fs.RemoveTree(l.model_dir).ok()) {
    (void)fs.SyncDir(l.root);
  }
}

// mkdir -p for the serve root. Existing ancestors may be symlinks: the
// operator chose them.
Status MakeDirs(FileSystem& fs, const std::string& path) {
  if (fs.Exists(path)) return Status::Ok();
  const std::string parent = Parent(path);
  if (parent != path) WD_RETURN_IF_ERROR(MakeDirs(fs, parent));
  Status st = fs.MakeDir(path);
  if (!st.ok()) return fs.IsDirectory(path) ? Status::Ok() : st;  // lost a race: fine
  return fs.SyncDir(parent);
}

// A folder we own inside the serve root: must be a real folder, never a
// symlink someone planted.
Status EnsureOwnDir(FileSystem& fs, const std::string& path) {
  if (fs.IsDirectory(path)) return Status::Ok();
  if (fs.Exists(path)) return Status::Environment(path + ": exists but is not a folder");
  Status st = fs.MakeDir(path);
  if (!st.ok()) return fs.IsDirectory(path) ? Status::Ok() : st;
  return fs.SyncDir(Parent(path));
}

Status WriteNewFile(FileSystem& fs, const std::string& path, const std::string& contents) {
  WD_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs.NewWritableFile(path));
  WD_RETURN_IF_ERROR(file->Append(contents.data(), contents.size()));
  WD_RETURN_IF_ERROR(file->Sync());
  return file->Close();
}

// Every shard the manifest names must be a plain file the producer wrote.
Status CheckStagedShards(FileSystem& fs, const std::string& staging, const StagedContent& c) {
  std::set<std::string> listed;
  for (const ShardFile& s : c.shards) listed.insert(s.name);
  for (const ManifestGroup& g : c.manifest) {
    for (const std::string& p : g.paths) {
      const bool plain = !p.empty() && p[0] != '.' && p.find('/') == std::string::npos;
      if (!plain || listed.count(p) == 0 || !fs.Exists(Join(staging, p)) ||
          fs.IsDirectory(Join(staging, p))) {
        return Status::Bundle(staging + ": the manifest names shard '" + p +
                              "' but no such shard was written");
      }
    }
  }
  return Status::Ok();
}

// Writes the manifest, model.json and publish.json next to the shards and
// renames the folder to S/M/<v>, v one above the newest existing version.
// A writer that does not take the lock (another host on NFS) may take v
// first: then the next number is tried. Returns v.
Result<int> FinishVersion(FileSystem& fs, Publisher& pub, const Layout& l,
                          const PublishRequest& req, const std::string& staging,
                          const StagedContent& content) {
  WD_RETURN_IF_ERROR(CheckStagedShards(fs, staging, content));
  const std::string manifest_json = ManifestToJson(content.manifest);
  WD_RETURN_IF_ERROR(WriteNewFile(fs, Join(staging, kManifestFile), manifest_json));
  if (content.model_json) {
    const std::string where = req.source_path.empty() ? staging : req.source_path;
    WD_ASSIGN_OR_RETURN(std::string mj,
                        ModelJsonWith(*content.model_json, content.manifest, where));
    WD_RETURN_IF_ERROR(WriteNewFile(fs, Join(staging, kModelFile), mj));
  }
  WD_ASSIGN_OR_RETURN(std::vector<int> versions, pub.ListVersions(l.root, l.model));
  int v = versions.empty() ? 1 : versions.back() + 1;
  const std::string provenance = Join(staging, kProvenanceFile);
  for (int attempt = 1;; ++attempt, ++v) {
    WD_RETURN_IF_ERROR(
        WriteNewFile(fs, provenance, ProvenanceJson(req, v, content, manifest_json)));
    WD_RETURN_IF_ERROR(fs.SyncDir(staging));
    Status st = fs.Rename(staging, l.Version(v));
    if (st.ok()) break;
    if (!fs.Exists(l.Version(v)) || attempt == kMaxVersionAttempts) return st;
    WD_RETURN_IF_ERROR(fs.Remove(provenance));
  }
  WD_RETURN_IF_ERROR(fs.SyncDir(l.model_dir));
  WD_RETURN_IF_ERROR(fs.SyncDir(l.staging));
  return v;
}

// The three pointers of a model; nullopt: absent.
struct Pointers {
  std::optional<std::string> model_json;
  std::optional<std::string> manifest;
  std::optional<std::string> current;  // symlink target
};

Result<Pointers> ReadPointers(FileSystem& fs, const Layout& l) {
  Pointers p;
  if (fs.Exists(l.In(kModelFile))) {
    WD_ASSIGN_OR_RETURN(p.model_json, fs.ReadFile(l.In(kModelFile), kMaxJsonBytes));
  }
  if (fs.Exists(l.In(kManifestFile))) {
    WD_ASSIGN_OR_RETURN(p.manifest, fs.ReadFile(l.In(kManifestFile), kMaxJsonBytes));
  }
  if (fs.Exists(l.In(kCurrentLink))) {
    WD_ASSIGN_OR_RETURN(p.current, fs.ReadLink(l.In(kCurrentLink)));
  }
  return p;
}

Status ReplaceCurrent(FileSystem& fs, const Layout& l, const std::string& target) {
  const std::string tmp = l.In(kCurrentTmpPrefix + RandomHexSuffix());
  WD_RETURN_IF_ERROR(fs.Symlink(target, tmp));
  Status st = fs.Rename(tmp, l.In(kCurrentLink));
  if (!st.ok()) {
    (void)fs.Remove(tmp);
    return st;
  }
  return fs.SyncDir(l.model_dir);
}

Status PutPointer(FileSystem& fs, const Layout& l, const std::string& name,
                  const std::optional<std::string>& contents) {
  if (contents) return fs.WriteFileAtomically(l.In(name), *contents);
  if (!fs.Exists(l.In(name))) return Status::Ok();
  WD_RETURN_IF_ERROR(fs.Remove(l.In(name)));
  return fs.SyncDir(l.model_dir);
}

// model.json first and current last: HTTP clients read the files, file
// system consumers follow current.
Status WritePointers(FileSystem& fs, const Layout& l, const Pointers& p) {
  WD_RETURN_IF_ERROR(PutPointer(fs, l, kModelFile, p.model_json));
  WD_RETURN_IF_ERROR(PutPointer(fs, l, kManifestFile, p.manifest));
  if (p.current) return ReplaceCurrent(fs, l, *p.current);
  return PutPointer(fs, l, kCurrentLink, std::nullopt);
}

// Moves all pointers to `next`, or back to what they were on failure.
Status SwapPointers(FileSystem& fs, const Layout& l, const Pointers& next) {
  WD_ASSIGN_OR_RETURN(Pointers prev, ReadPointers(fs, l));
  Status st = WritePointers(fs, l, next);
  if (st.ok()) return st;
  Status undo = WritePointers(fs, l, prev);
  if (undo.ok()) return st;
  return Status::Error(
      st.kind(),
      st.message() + "; putting the previous pointers back also failed: " + undo.message());
}

// The pointers that make version `v` current.
Result<Pointers> PointersFor(const Manifest& plain, const std::optional<std::string>& topology,
                             int v, const std::string& where) {
  const Manifest qualified = WithPathPrefix(plain, std::to_string(v) + "/");
  Pointers p;
  p.manifest = ManifestToJson(qualified);
  if (topology) {
    WD_ASSIGN_OR_RETURN(p.model_json, ModelJsonWith(*topology, qualified, where));
  }
  p.current = std::to_string(v);
  return p;
}

// The pointers for an existing version, after checking that it is whole.
Result<Pointers> PointersForVersion(FileSystem& fs, const Layout& l, int v) {
  const std::string vdir = l.Version(v);
  const std::string manifest_path = Join(vdir, kManifestFile);
  WD_ASSIGN_OR_RETURN(std::string text, fs.ReadFile(manifest_path, kMaxJsonBytes));
  WD_ASSIGN_OR_RETURN(Manifest manifest, ParseManifest(text, manifest_path));
  for (const ManifestGroup& g : manifest) {
    for (const std::string& p : g.paths) {
      if (!fs.Exists(Join(vdir, p))) {
        return Status::Environment(vdir + ": incomplete, shard '" + p + "' is missing");
      }
    }
  }
  std::optional<std::string> topology;
  const std::string model_path = Join(vdir, kModelFile);
  if (fs.Exists(model_path)) {
    WD_ASSIGN_OR_RETURN(topology, fs.ReadFile(model_path, kMaxJsonBytes));
    Status valid = CheckModelJson(*topology, model_path);
    if (!valid.ok()) return Status::Environment(valid.message());
  }
  return PointersFor(manifest, topology, v, model_path);
}

// A rollback of S/M where M is a version number, S/M is no model of its
// own (no `current`) and S is a model (a `current` or version folders): the
// user named a version folder, S/<v>, instead of the model folder.
bool NamesVersionFolder(FileSystem& fs, const Layout& l) {
  if (!ParseVersion(l.model) || fs.Exists(l.In(kCurrentLink))) return false;
  if (fs.Exists(Join(l.root, kCurrentLink))) return true;
  Result<std::vector<std::string>> names = fs.ListDir(l.root);
  if (!names.ok()) return false;
  return std::any_of(names->begin(), names->end(), [&](const std::string& n) {
    return n != l.model && ParseVersion(n) && fs.IsDirectory(Join(l.root, n));
  });
}

// Removes pointer temporaries a crash left in S/M. REQUIRES: the model lock.
void RemoveStalePointerTemps(FileSystem& fs, const Layout& l, std::vector<std::string>* warnings) {
  Result<std::vector<std::string>> names = fs.ListDir(l.model_dir);
  if (!names.ok()) return;
  for (const std::string& n : *names) {
    const bool stale = n.rfind(kCurrentTmpPrefix, 0) == 0 ||
                       n.rfind(std::string(kManifestFile) + ".tmp-", 0) == 0 ||
                       n.rfind(std::string(kModelFile) + ".tmp-", 0) == 0;
    if (!stale) continue;
    Status st = fs.Remove(l.In(n));
    if (!st.ok() && warnings != nullptr) warnings->push_back(st.message());
  }
}

// True when version `v` was published from the same source and settings.
bool SameSource(FileSystem& fs, const Layout& l, int v, const PublishRequest& req,
                std::vector<std::string>* warnings) {
  if (req.source_sha256.empty()) return false;
  const std::string path = Join(l.Version(v), kProvenanceFile);
  Result<std::string> text = fs.ReadFile(path, kMaxJsonBytes);
  if (!text.ok()) {
    warnings->push_back("unchanged check skipped: " + text.status().message());
    return false;
  }
  return RecordsSameSource(*text, path, req, warnings);
}

// True when current was published from the same source and settings.
bool SameAsCurrent(FileSystem& fs, Publisher& pub, const Layout& l, const PublishRequest& req,
                   int* current, std::vector<std::string>* warnings) {
  Result<std::optional<int>> cur = pub.CurrentVersion(l.root, l.model);
  if (!cur.ok()) {
    warnings->push_back(cur.status().message());
    return false;
  }
  if (!*cur || !SameSource(fs, l, **cur, req, warnings)) return false;
  *current = **cur;
  return true;
}

// A publish that crashed after its version folder was renamed into place but
// before the pointers moved leaves the newest version unnamed. Republishing
// the same bundle completes it instead of writing it again, so a bundle is
// published exactly once. Returns that version, or 0.
int InterruptedVersion(FileSystem& fs, Publisher& pub, const Layout& l, const PublishRequest& req,
                       std::vector<std::string>* warnings) {
  Result<std::vector<int>> versions = pub.ListVersions(l.root, l.model);
  Result<std::optional<int>> cur = pub.CurrentVersion(l.root, l.model);
  if (!versions.ok() || versions->empty() || !cur.ok()) return 0;
  const int newest = versions->back();
  if (*cur && **cur >= newest) return 0;
  return SameSource(fs, l, newest, req, warnings) ? newest : 0;
}

// Keeps the newest `keep` versions, the one current names and those in
// `protect`; moves the others into S/.staging and deletes them there.
// Failures are warnings.
void ApplyRetention(FileSystem& fs, Publisher& pub, const Layout& l, int keep,
                    const std::set<int>& protect, PublishResult* r) {
  Result<std::vector<int>> versions = pub.ListVersions(l.root, l.model);
  Result<std::optional<int>> cur = pub.CurrentVersion(l.root, l.model);
  if (!versions.ok() || !cur.ok()) {
    r->warnings.push_back("retention skipped: " +
                          (versions.ok() ? cur.status() : versions.status()).message());
    return;
  }
  const size_t n = versions->size();
  for (size_t i = 0; i + static_cast<size_t>(keep) < n; ++i) {
    const int v = (*versions)[i];
    if (protect.count(v) != 0 || (*cur && v == **cur)) continue;
    const std::string trash = l.NewStagingName();
    Status st = fs.Rename(l.Version(v), trash);
    if (!st.ok()) {
      r->warnings.push_back("retention: " + st.message());
      continue;
    }
    r->removed.push_back(v);
    st = fs.RemoveTree(trash);
    if (!st.ok()) r->warnings.push_back("retention (left for the next start): " + st.message());
  }
  if (r->removed.empty()) return;
  Status st = fs.SyncDir(l.model_dir);
  if (!st.ok()) r->warnings.push_back("retention: " + st.message());
}

// The unchanged and interrupted-publish checks: a result that needs no new
// version, or nullopt.
std::optional<Result<PublishResult>> ReuseExisting(FileSystem& fs, Publisher& pub, const Layout& l,
                                                   const PublishRequest& req,
                                                   PublishResult result) {
  if (!req.skip_if_unchanged) return std::nullopt;
  int current = 0;
  if (SameAsCurrent(fs, pub, l, req, &current, &result.warnings)) {
    result.version = current;
    result.version_dir = l.Version(current);
    result.unchanged = true;
    return Result<PublishResult>(std::move(result));
  }
  const int v = InterruptedVersion(fs, pub, l, req, &result.warnings);
  if (v == 0) return std::nullopt;
  Result<Pointers> next = PointersForVersion(fs, l, v);
  if (!next.ok()) return Result<PublishResult>(next.status());
  if (Status st = SwapPointers(fs, l, *next); !st.ok()) return Result<PublishResult>(st);
  result.version = v;
  result.version_dir = l.Version(v);
  result.warnings.push_back("version " + std::to_string(v) +
                            " (newer than current) was already written from this bundle, "
                            "likely by an interrupted publish: made it current");
  ApplyRetention(fs, pub, l, req.keep_versions, {v}, &result);
  return Result<PublishResult>(std::move(result));
}

// "<M>.<pid>.<random>" -> M.
std::string ModelOfStagingName(const std::string& name) {
  size_t last = name.rfind('.');
  if (last == std::string::npos || last == 0) return "";
  size_t pid = name.rfind('.', last - 1);
  return pid == std::string::npos ? "" : name.substr(0, pid);
}

}  // namespace

Status ValidateModelName(const std::string& model) {
  if (model.empty()) return Status::Usage("model name is empty");
  const std::string quoted = "model name '" + model + "'";
  if (model.size() > 200) return Status::Usage(quoted + " is longer than 200 characters");
  if (model[0] == '.') return Status::Usage(quoted + " must not start with '.'");
  for (char c : model) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return Status::Usage(quoted + " may only hold letters, digits, '.', '_' and '-'");
  }
  return Status::Ok();
}

Result<PublishResult> Publisher::Publish(
    const PublishRequest& req,
    const std::function<Result<StagedContent>(StagingArea& staging)>& produce) {
  WD_RETURN_IF_ERROR(ValidateModelName(req.model));
  if (req.serve_root.empty()) return Status::Usage("serve root is empty");
  if (req.keep_versions < 1) {
    return Status::Config("keep_versions must be at least 1, got " +
                          std::to_string(req.keep_versions));
  }
  const Layout l(req.serve_root, req.model);
  WD_RETURN_IF_ERROR(MakeDirs(fs_, l.root));
  WD_RETURN_IF_ERROR(EnsureOwnDir(fs_, l.staging));
  WD_RETURN_IF_ERROR(EnsureOwnDir(fs_, l.model_dir));
  WD_ASSIGN_OR_RETURN(std::unique_ptr<ModelLock> lock, ModelLock::Acquire(fs_, l.model_dir, true));
  WD_ASSIGN_OR_RETURN(std::vector<int> before, ListVersions(req.serve_root, req.model));
  const bool first = before.empty() && !fs_.Exists(l.In(kManifestFile));

  PublishResult result;
  RemoveStalePointerTemps(fs_, l, &result.warnings);
  if (auto reused = ReuseExisting(fs_, *this, l, req, result)) return std::move(*reused);

  const std::string staging = l.NewStagingName();
  WD_RETURN_IF_ERROR(fs_.MakeDir(staging));
  FolderStagingArea area(fs_, staging);
  Result<StagedContent> content = produce(area);
  // A producer that learnt the source digest while it worked (hashing the
  // bundle alongside encoding) gets the unchanged check now.
  PublishRequest effective = req;
  if (content.ok() && effective.source_sha256.empty() && !content->source_sha256.empty()) {
    effective.source_sha256 = content->source_sha256;
    if (auto reused = ReuseExisting(fs_, *this, l, effective, result)) {
      (void)fs_.RemoveTree(staging);
      return std::move(*reused);
    }
  }
  if (content.ok() && content->cancelled) {
    (void)fs_.RemoveTree(staging);
    return Status::Environment(l.model_dir +
                               ": the producer stopped early but the bundle is "
                               "not the current version's; publish again");
  }
  Result<int> v = content.ok() ? FinishVersion(fs_, *this, l, effective, staging, *content)
                               : Result<int>(content.status());
  if (!v.ok()) {
    (void)fs_.RemoveTree(staging);  // gone already if the rename happened
    if (first) RemoveIfUnpublished(fs_, l);
    return v.status();
  }

  WD_ASSIGN_OR_RETURN(Pointers next,
                      PointersFor(content->manifest, content->model_json, *v, req.source_path));
  const std::set<int> protect = {*v};
  Status st = SwapPointers(fs_, l, next);
  if (!st.ok()) {
    return st.WithContext(l.model_dir + ": version " + std::to_string(*v) +
                          " was written but could not be made current");
  }
  result.version = *v;
  result.version_dir = l.Version(*v);
  ApplyRetention(fs_, *this, l, req.keep_versions, protect, &result);
  return result;
}

std::optional<Publisher::SourceRecord> Publisher::CurrentSource(const std::string& serve_root,
                                                                const std::string& model) {
  const Layout l(serve_root, model);
  Result<std::optional<int>> cur = CurrentVersion(serve_root, model);
  if (!cur.ok() || !*cur) return std::nullopt;
  Result<std::string> text = fs_.ReadFile(Join(l.Version(**cur), kProvenanceFile), kMaxJsonBytes);
  if (!text.ok()) return std::nullopt;
  return SourceRecordOf(*text);
}

Result<int> Publisher::Rollback(const std::string& serve_root, const std::string& model,
                                std::optional<int> to) {
  WD_RETURN_IF_ERROR(ValidateModelName(model));
  const Layout l(serve_root, model);
  // Before the lock: taking it would create .lock inside a version folder.
  if (NamesVersionFolder(fs_, l)) {
    const std::string hint = "pass the model folder and the version, `weightdrop rollback " +
                             l.root + " --to " + model + "`";
    if (fs_.IsDirectory(l.model_dir))
      return Status::Usage(l.model_dir + " is a version folder: " + hint);
    return Status::Usage(l.model_dir + ": no such model folder; " + l.root +
                         " is a model: " + hint);
  }
  if (!fs_.IsDirectory(l.model_dir)) return Status::Usage(l.model_dir + ": no such model folder");
  WD_ASSIGN_OR_RETURN(std::unique_ptr<ModelLock> lock, ModelLock::Acquire(fs_, l.model_dir, true));
  RemoveStalePointerTemps(fs_, l, nullptr);
  WD_ASSIGN_OR_RETURN(std::vector<int> versions, ListVersions(serve_root, model));
  // With an explicit target, rollback also repairs a damaged `current`.
  Result<std::optional<int>> cur = CurrentVersion(serve_root, model);
  if (!cur.ok() && !to) return cur.status();
  WD_ASSIGN_OR_RETURN(
      int target, PickRollbackTarget(l.model_dir, versions, cur.ok() ? *cur : std::nullopt, to));
  WD_ASSIGN_OR_RETURN(Pointers next, PointersForVersion(fs_, l, target));
  WD_RETURN_IF_ERROR(SwapPointers(fs_, l, next));
  return target;
}

Status Publisher::RemoveLeftoverStaging(const std::string& serve_root) {
  const Layout root(serve_root, "");
  if (!fs_.Exists(root.staging)) return Status::Ok();
  WD_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_.ListDir(root.staging));
  Status first;
  for (const std::string& name : names) {
    // A publish in progress (another thread or process) holds its model's
    // lock: leave its staging folder alone.
    const std::string model = ModelOfStagingName(name);
    std::unique_ptr<ModelLock> lock;
    if (ValidateModelName(model).ok() && fs_.IsDirectory(Join(root.root, model))) {
      Result<std::unique_ptr<ModelLock>> held =
          ModelLock::Acquire(fs_, Join(root.root, model), false);
      if (held.ok() && *held == nullptr) continue;
      if (held.ok()) lock = std::move(*held);
    }
    Status st = fs_.RemoveTree(Join(root.staging, name));
    if (!st.ok() && first.ok()) first = st;
  }
  if (!first.ok()) return first;
  return fs_.SyncDir(root.staging);
}

Result<std::vector<int>> Publisher::ListVersions(const std::string& serve_root,
                                                 const std::string& model) {
  const Layout l(serve_root, model);
  if (!fs_.Exists(l.model_dir)) return std::vector<int>();
  WD_ASSIGN_OR_RETURN(std::vector<std::string> names, fs_.ListDir(l.model_dir));
  std::vector<int> versions;
  for (const std::string& n : names) {
    std::optional<int> v = ParseVersion(n);
    if (v && fs_.IsDirectory(l.In(n))) versions.push_back(*v);
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

Result<std::optional<int>> Publisher::CurrentVersion(const std::string& serve_root,
                                                     const std::string& model) {
  const Layout l(serve_root, model);
  const std::string link = l.In(kCurrentLink);
  if (!fs_.Exists(link)) return std::optional<int>();
  WD_ASSIGN_OR_RETURN(std::string target, fs_.ReadLink(link));
  std::optional<int> v = ParseVersion(target);
  if (!v) return Status::Environment(link + ": names '" + target + "', not a version number");
  return v;
}

}  // namespace wd
