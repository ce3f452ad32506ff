// DropFolder: the file-system side of one drop folder — listing candidate
// bundles with a signature that changes whenever anything inside them does,
// and moving a bundle through .weightdrop/processing, done and failed.
// Every function here does disk I/O: call them on worker threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/daemon_config.h"
#include "core/file_system.h"
#include "core/status.h"

namespace wd {

struct DropEntry {
  enum class Kind { kFile, kDir, kSymlink, kOther };
  std::string name;
  Kind kind = Kind::kOther;
  uint64_t signature = 0;            // over names, sizes, mtimes and inodes inside
  int64_t ctime_ns = 0;              // of the entry itself: a rename into the folder sets it
  bool ready_marker = false;         // a folder holding ".ready"
  std::vector<std::string> subdirs;  // folders inside a folder entry (relative)
};

// True for names that can be bundles: not ignored (docs/formats.md, "Bundle"), and a bundle
// file (core/bundle_formats.h) or a folder.
bool IsBundleCandidate(const DropEntry& e);
// Why `e` is not a bundle candidate, for the log ("" when it is one).
std::string WhyNotABundle(const DropEntry& e);
// True when `e` is skipped as an upload in progress (a hidden or temporary
// name: the documented way to upload), which is logged at info, not warning.
bool IsUploadInProgress(const DropEntry& e);

// Lists the drop folder (never following links; .weightdrop skipped).
Result<std::vector<DropEntry>> ScanDrop(const std::string& drop);

// Creates drop/.weightdrop/{processing,done,failed}.
Status EnsureDropLayout(const std::string& drop);

// A claimed bundle: processing/<id>/<name>. The id sorts in claim order, so
// bundles recovered at start keep their arrival order.
struct Claimed {
  std::string id;
  std::string name;
  std::string path;  // processing/<id>/<name>
  // Set when the claim's rename is done but could not be made durable (a
  // failed directory fsync): the bundle is claimed all the same, since it
  // is in processing/ either way; the caller logs this.
  std::string warning;
};

// A new claim id: sorts after every id made before it (on this clock).
std::string NewClaimId();

// Renames drop/<name> into processing/<id>/<name>, then fsyncs both folders
// through `fs` (a failed fsync is Claimed::warning). kIncomplete if it is gone.
Result<Claimed> ClaimBundle(const std::string& drop, const std::string& name, const std::string& id,
                            FileSystem& fs = DefaultFileSystem());
// Bundles left in processing/ (a crash or stop mid-publish), in claim order.
// A bundle placed directly in processing/ (by hand) comes first, with an
// empty id.
Result<std::vector<Claimed>> ListProcessing(const std::string& drop);

// After a publish: moves the bundle to done/<name> (or <name>.2, ...);
// returns the new path.
Result<std::string> ArchiveBundle(const std::string& drop, const Claimed& c);
// on_success: delete.
Status DeleteBundle(const std::string& drop, const Claimed& c);
// After a failure: moves it to failed/<name> and writes
// failed/<name>.error.txt with `error`, and `fault` (whose fault it is) when
// not empty; returns the new bundle path.
Result<std::string> QuarantineBundle(const std::string& drop, const Claimed& c,
                                     const std::string& error, const std::string& fault = "");

// A bundle in drop/.weightdrop/failed/ and the name it had in the drop folder.
struct FailedBundle {
  std::string name;       // in failed/: "x.npz", or "x.npz.2" after a name collision
  std::string original;   // in the drop folder: "x.npz"
  int64_t failed_ns = 0;  // ctime: when it was moved into failed/
};

// The bundles in failed/ (not their .error.txt), oldest failure first, so
// that moving them back in this order keeps their arrival order. `original`
// is the name in the "bundle:" line of <name>.error.txt when it agrees with
// `name` (equal, or `name` is it plus ".N"); without that, a ".N" (N >= 2)
// after a bundle extension is dropped; else it is `name`. A missing failed/
// folder holds nothing.
Result<std::vector<FailedBundle>> ListFailed(const std::string& drop);

// Moves failed/<f.name> back to drop/<f.original> by one rename (a running
// daemon takes a renamed-in bundle at once), never over an existing entry:
// then it fails with sys_errno() EEXIST and nothing moves. Then removes
// failed/<f.name>.error.txt and fsyncs both folders through `fs`; a failure
// there is Retried::warning, since the bundle is back either way.
struct Retried {
  std::string path;  // drop/<original>
  std::string warning;
};
Result<Retried> RetryFailed(const std::string& drop, const FailedBundle& f,
                            FileSystem& fs = DefaultFileSystem());

// Removes what drop/.weightdrop/<kind>/ ("done" or "failed") holds past
// `keep`: entries moved in longer than max_age ago (by their ctime, which
// the move into the archive set), or beyond the newest max_count. A failed
// bundle's <name>.error.txt goes with it. Returns the names removed (bundles,
// not their error files). Worker thread.
Result<std::vector<std::string>> PruneArchive(const std::string& drop, const char* kind,
                                              const ArchiveRetention& keep, int64_t now_ms);

}  // namespace wd
