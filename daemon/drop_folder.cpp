#include "daemon/drop_folder.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <set>
#include <string_view>

#include "core/bundle.h"
#include "core/bundle_formats.h"
#include "core/file_system.h"

namespace wd {
namespace {

constexpr const char* kMeta = ".weightdrop";

std::string Meta(const std::string& drop, const char* sub) {
  return drop + "/" + kMeta + "/" + sub;
}

void Mix(uint64_t& h, uint64_t v) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); }

void MixString(uint64_t& h, const std::string& s) {
  for (unsigned char c : s) Mix(h, c);
}

void MixStat(uint64_t& h, const struct stat& st) {
  Mix(h, static_cast<uint64_t>(st.st_size));
  Mix(h, static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
             static_cast<uint64_t>(st.st_mtim.tv_nsec));
  Mix(h, static_cast<uint64_t>(st.st_ino));
  Mix(h, static_cast<uint64_t>(st.st_mode));
}

Result<std::vector<std::string>> ListNames(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus("cannot list " + dir, errno);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
    errno = 0;
  }
  const int err = errno;  // readdir returns null at the end and on an error
  closedir(d);
  if (err != 0) return ErrnoStatus("cannot list " + dir, err);
  std::sort(names.begin(), names.end());
  return names;
}

// Folds everything under `dir` (relative path `rel`) into the entry.
void ScanTree(const std::string& dir, const std::string& rel, DropEntry& e, int depth) {
  auto names = ListNames(dir);
  if (!names.ok() || depth > 64) return;
  for (const auto& n : *names) {
    struct stat st;
    const std::string path = dir + "/" + n;
    if (lstat(path.c_str(), &st) != 0) continue;
    MixString(e.signature, rel + n);
    MixStat(e.signature, st);
    if (rel.empty() && n == ".ready") e.ready_marker = true;
    if (S_ISDIR(st.st_mode)) {
      e.subdirs.push_back(rel + n);
      ScanTree(path, rel + n + "/", e, depth + 1);
    }
  }
}

bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

// `dir/name`, or `dir/name.2`, `.3`, ... whichever is free.
std::string FreeName(const std::string& dir, const std::string& name) {
  std::string p = dir + "/" + name;
  for (int i = 2; Exists(p) || Exists(p + ".error.txt"); ++i) {
    p = dir + "/" + name + "." + std::to_string(i);
  }
  return p;
}

bool IsClaimId(const std::string& n) {
  return n.size() == 27 && n[20] == '-' &&
         std::all_of(n.begin(), n.end(), [](char c) { return c == '-' || (c >= '0' && c <= '9'); });
}

void RemoveClaimDir(const std::string& drop, const Claimed& c) {
  if (!c.id.empty()) rmdir((Meta(drop, "processing") + "/" + c.id).c_str());
}

}  // namespace

std::string NewClaimId() {
  static std::atomic<unsigned> counter{0};
  const auto now = std::chrono::system_clock::now();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%020lld-%06u", static_cast<long long>(ns.count()),
                counter.fetch_add(1) % 1000000);
  return buf;
}

namespace {

Status Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoStatus("cannot move " + from + " to " + to, errno);
  }
  return Status::Ok();
}

}  // namespace

bool IsBundleCandidate(const DropEntry& e) {
  if (IsIgnoredName(e.name)) return false;
  if (e.kind == DropEntry::Kind::kDir) return true;
  return e.kind == DropEntry::Kind::kFile && IsBundleFileName(e.name);
}

bool IsUploadInProgress(const DropEntry& e) {
  return e.kind != DropEntry::Kind::kSymlink && IsIgnoredName(e.name);
}

std::string WhyNotABundle(const DropEntry& e) {
  if (IsBundleCandidate(e)) return "";
  if (e.kind == DropEntry::Kind::kSymlink) {
    return "is a symbolic link; weightdrop never follows links";
  }
  if (!e.name.empty() && e.name[0] == '.') {
    return "is hidden (leading '.'): skipped, as an upload in progress; rename it when complete";
  }
  if (IsIgnoredName(e.name)) {
    return "has a temporary name (.tmp, .part, .partial, .crdownload or ~): skipped, as an upload "
           "in progress; rename it when complete";
  }
  if (e.kind == DropEntry::Kind::kOther) return "is not a regular file or folder";
  if (HasBundleExtensionInOtherCase(e.name)) {
    return "is not a bundle: the extension must be lower case (" + BundleExtensionList() + ")";
  }
  return "is not a bundle (a bundle is " + BundleFileKinds() + ", or a folder)";
}

Result<std::vector<DropEntry>> ScanDrop(const std::string& drop) {
  WD_ASSIGN_OR_RETURN(std::vector<std::string> names, ListNames(drop));
  std::vector<DropEntry> out;
  for (const auto& n : names) {
    if (n == kMeta) continue;
    struct stat st;
    const std::string path = drop + "/" + n;
    if (lstat(path.c_str(), &st) != 0) continue;  // gone meanwhile
    DropEntry e;
    e.name = n;
    MixStat(e.signature, st);
    e.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
    if (S_ISLNK(st.st_mode)) {
      e.kind = DropEntry::Kind::kSymlink;
    } else if (S_ISREG(st.st_mode)) {
      e.kind = DropEntry::Kind::kFile;
    } else if (S_ISDIR(st.st_mode)) {
      e.kind = DropEntry::Kind::kDir;
      if (!IsIgnoredName(n)) ScanTree(path, "", e, 0);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Status EnsureDropLayout(const std::string& drop) {
  for (const std::string& d : {drop, drop + "/" + kMeta, Meta(drop, "processing"),
                               Meta(drop, "done"), Meta(drop, "failed")}) {
    if (mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus("cannot create " + d, errno);
    }
  }
  return Status::Ok();
}

Result<Claimed> ClaimBundle(const std::string& drop, const std::string& name, const std::string& id,
                            FileSystem& fs) {
  Claimed c{.id = id, .name = name, .path = "", .warning = ""};
  const std::string dir = Meta(drop, "processing") + "/" + c.id;
  if (mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus("cannot create " + dir, errno);
  c.path = dir + "/" + name;
  if (rename((drop + "/" + name).c_str(), c.path.c_str()) != 0) {
    const int err = errno;
    rmdir(dir.c_str());
    if (err == ENOENT)
      return Status::Incomplete(drop + "/" + name + ": gone before it was claimed");
    return ErrnoStatus("cannot claim " + drop + "/" + name, err);
  }
  // The rename is done: from here the bundle is ours, and an error would
  // leave it in processing/ with nobody working on it until a restart.
  Status st = fs.SyncDir(dir);
  if (st.ok()) st = fs.SyncDir(drop);
  if (!st.ok()) c.warning = "claim of " + c.path + " may not survive a power loss: " + st.message();
  return c;
}

Result<std::vector<Claimed>> ListProcessing(const std::string& drop) {
  const std::string root = Meta(drop, "processing");
  WD_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListNames(root));
  std::vector<Claimed> out;
  for (const auto& id : ids) {  // placed by hand: no claim folder
    if (!IsClaimId(id) && !IsIgnoredName(id)) {
      out.push_back({.id = "", .name = id, .path = root + "/" + id, .warning = ""});
    }
  }
  for (const auto& id : ids) {
    if (!IsClaimId(id)) continue;
    auto names = ListNames(root + "/" + id);
    if (!names.ok()) continue;  // a stray file: not ours
    if (names->empty()) {
      rmdir((root + "/" + id).c_str());  // a claim that crashed before its rename
      continue;
    }
    for (const auto& n : *names)
      out.push_back({.id = id, .name = n, .path = root + "/" + id + "/" + n, .warning = ""});
  }
  return out;
}

Result<std::string> ArchiveBundle(const std::string& drop, const Claimed& c) {
  const std::string to = FreeName(Meta(drop, "done"), c.name);
  WD_RETURN_IF_ERROR(Rename(c.path, to));
  RemoveClaimDir(drop, c);
  WD_RETURN_IF_ERROR(DefaultFileSystem().SyncDir(Meta(drop, "done")));
  return to;
}

Status DeleteBundle(const std::string& drop, const Claimed& c) {
  WD_RETURN_IF_ERROR(DefaultFileSystem().RemoveTree(c.path));
  RemoveClaimDir(drop, c);
  return Status::Ok();
}

Result<std::string> QuarantineBundle(const std::string& drop, const Claimed& c,
                                     const std::string& error, const std::string& fault) {
  const std::string to = FreeName(Meta(drop, "failed"), c.name);
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);  // a worker thread: std::gmtime's buffer is shared
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  const std::string text = "bundle: " + drop + "/" + c.name + "\nfailed: " + when +
                           "\nerror: " + error + "\n" +
                           (fault.empty() ? "" : "fault: " + fault + "\n");
  FileSystem& fs = DefaultFileSystem();
  WD_RETURN_IF_ERROR(fs.WriteFileAtomically(to + ".error.txt", text));
  WD_RETURN_IF_ERROR(Rename(c.path, to));
  RemoveClaimDir(drop, c);
  WD_RETURN_IF_ERROR(fs.SyncDir(Meta(drop, "failed")));
  return to;
}

namespace {

bool IsDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// True when `name` is what FreeName made of `original`: itself or ".N" after it.
bool IsFreeNameOf(const std::string& name, const std::string& original) {
  if (original.empty() || name.compare(0, original.size(), original) != 0) return false;
  if (name.size() == original.size()) return true;
  return name[original.size()] == '.' && IsDigits(name.substr(original.size() + 1));
}

// The drop-folder name of failed/<name> (see ListFailed).
std::string OriginalName(const std::string& failed_dir, const std::string& name) {
  auto text = DefaultFileSystem().ReadFile(failed_dir + "/" + name + ".error.txt", 1 << 20);
  constexpr std::string_view kBundle = "bundle: ";
  if (text.ok() && text->compare(0, kBundle.size(), kBundle) == 0) {
    const std::string line = text->substr(kBundle.size(), text->find('\n') - kBundle.size());
    const std::string original = line.substr(line.rfind('/') + 1);
    if (IsFreeNameOf(name, original)) return original;
  }
  const size_t dot = name.rfind('.');
  if (dot != std::string::npos && IsDigits(name.substr(dot + 1)) && name.size() - dot <= 10 &&
      std::stoul(name.substr(dot + 1)) >= 2) {
    const std::string base = name.substr(0, dot);
    if (IsBundleFileName(base)) return base;
  }
  return name;
}

}  // namespace

Result<std::vector<FailedBundle>> ListFailed(const std::string& drop) {
  const std::string dir = Meta(drop, "failed");
  std::vector<FailedBundle> out;
  if (!Exists(dir)) return out;
  WD_ASSIGN_OR_RETURN(std::vector<std::string> names, ListNames(dir));
  for (const std::string& n : names) {
    // Error files, and what a crash left of writing one, are not bundles.
    if (IsIgnoredName(n) || n.ends_with(".error.txt") ||
        n.find(".error.txt.tmp-") != std::string::npos) {
      continue;
    }
    struct stat st;
    if (lstat((dir + "/" + n).c_str(), &st) != 0) continue;  // gone meanwhile
    out.push_back({.name = n,
                   .original = OriginalName(dir, n),
                   .failed_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec});
  }
  std::stable_sort(out.begin(), out.end(), [](const FailedBundle& a, const FailedBundle& b) {
    return a.failed_ns < b.failed_ns;
  });
  return out;
}

Result<Retried> RetryFailed(const std::string& drop, const FailedBundle& f, FileSystem& fs) {
  const std::string dir = Meta(drop, "failed");
  const std::string from = dir + "/" + f.name;
  Retried r{.path = drop + "/" + f.original, .warning = ""};
  // RENAME_NOREPLACE: an entry that appeared in the drop folder meanwhile is
  // never replaced. File systems without it get a check, then a rename.
  int rc = renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, r.path.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
    if (Exists(r.path)) {
      errno = EEXIST;
    } else {
      rc = rename(from.c_str(), r.path.c_str());
    }
  }
  if (rc != 0) {
    const int err = errno;
    if (err == EEXIST) {
      return Status::Error(ErrorKind::kEnvironment,
                           r.path + " already exists; " + from + " was not moved over it", EEXIST);
    }
    return ErrnoStatus("cannot move " + from + " to " + r.path, err);
  }
  Status st = fs.Remove(from + ".error.txt");
  if (!st.ok() && st.sys_errno() == ENOENT) st = Status::Ok();
  if (st.ok()) st = fs.SyncDir(drop);
  if (st.ok()) st = fs.SyncDir(dir);
  if (!st.ok()) r.warning = r.path + " is back, but: " + st.message();
  return r;
}

Result<std::vector<std::string>> PruneArchive(const std::string& drop, const char* kind,
                                              const ArchiveRetention& keep, int64_t now_ms) {
  std::vector<std::string> removed;
  if (keep.max_age.count() == 0 && keep.max_count == 0) return removed;
  const std::string dir = Meta(drop, kind);
  WD_ASSIGN_OR_RETURN(std::vector<std::string> names, ListNames(dir));
  const std::set<std::string> present(names.begin(), names.end());
  struct Item {
    std::string name;
    int64_t moved_ms;
  };
  std::vector<Item> items;
  for (const std::string& n : names) {
    // An error file belongs to its bundle; alone (the bundle was removed by
    // hand) it is an entry of its own.
    if (n.ends_with(".error.txt") && present.count(n.substr(0, n.size() - 10)) != 0) continue;
    struct stat st;
    if (lstat((dir + "/" + n).c_str(), &st) != 0) continue;
    items.push_back({n, int64_t{st.st_ctim.tv_sec} * 1000 + st.st_ctim.tv_nsec / 1000000});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.moved_ms != b.moved_ms ? a.moved_ms > b.moved_ms : a.name > b.name;
  });
  FileSystem& fs = DefaultFileSystem();
  for (size_t i = 0; i < items.size(); ++i) {
    const bool too_many = keep.max_count > 0 && i >= static_cast<size_t>(keep.max_count);
    const bool too_old =
        keep.max_age.count() > 0 && now_ms - items[i].moved_ms > keep.max_age.count();
    if (!too_many && !too_old) continue;
    const std::string path = dir + "/" + items[i].name;
    WD_RETURN_IF_ERROR(fs.RemoveTree(path));
    WD_RETURN_IF_ERROR(fs.RemoveTree(path + ".error.txt"));
    removed.push_back(items[i].name);
  }
  if (!removed.empty()) WD_RETURN_IF_ERROR(fs.SyncDir(dir));
  return removed;
}

}  // namespace wd
