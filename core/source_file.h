// SourceFile: one file of a bundle as the reader of its format sees it: the
// weights it holds (name, source dtype, shape, where the bytes are) and a way
// to stream each one's bytes. Bundle (core/bundle.h) walks folders and asks
// the format registry (core/bundle_formats.h) which reader a file needs; it
// never names a format. A new input format is one reader (a file pair like
// core/safetensors_source.{h,cpp}) and one row in that registry.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/byte_source.h"
#include "core/npy_header.h"
#include "core/status.h"

namespace wd {

struct WeightEntry {
  std::string name;             // weight name (docs/formats.md, "Bundle"), e.g. "dense/kernel"
  std::string where;            // for messages: "bundle/x.npz: member 'a.npy'" or "bundle/a.npy"
  NpyDtype dtype;               // the source dtype; descr as the file names it ("<f4", "BF16")
  std::vector<uint64_t> shape;  // empty for a scalar
  bool fortran_order = false;   // only .npy can say so
  uint64_t element_count = 1;   // product of shape
  uint64_t data_bytes = 0;      // element_count * dtype.item_size
  // Offset of the data in its file or member, for messages about byte
  // positions ("truncated at byte N").
  uint64_t data_offset = 0;
  size_t file = 0;  // index of its SourceFile in the bundle
  size_t item = 0;  // which weight of that file (the reader's own numbering)
};

class SourceFile {
 public:
  virtual ~SourceFile() = default;
  // A fresh stream over `w`'s data bytes: exactly w.data_bytes bytes. May be
  // called any number of times; not thread-safe (Reopen for another
  // thread). `check_crc` false: the data was already read once with its
  // checks (the second pass of affine quantization), which may be skipped.
  virtual Result<std::unique_ptr<ByteSource>> OpenData(const WeightEntry& w,
                                                       bool check_crc) const = 0;
  // True when reading `w` costs an inflation (so twice costs two).
  virtual bool IsCompressed(const WeightEntry& /*w*/) const { return false; }
  // Where `w`'s data bytes sit in the file, when OpenData(w, true) streams
  // exactly those bytes as they are (not inflated); nullopt otherwise.
  virtual std::optional<uint64_t> RawDataOffset(const WeightEntry& /*w*/) const {
    return std::nullopt;
  }
  // An independent copy for reading on another thread. `root_fd` is the
  // new bundle's own descriptor of its root folder (-1 for a file bundle).
  virtual Result<std::unique_ptr<SourceFile>> Reopen(int root_fd) const = 0;
  // String metadata the file carries (safetensors' __metadata__), recorded
  // in publish.json; empty for formats without any.
  virtual const std::map<std::string, std::string>& metadata() const;
};

// Where a reader finds the file it indexes.
struct SourceLocation {
  // The bundle's root folder (borrowed; valid while the bundle lives), or
  // -1 when the file is the bundle itself.
  int root_fd = -1;
  std::string rel;        // path under the root ("" for a file bundle)
  std::string where;      // the path, for messages: "bundle/sub/x.npz"
  std::string file_name;  // last component: "x.npz"
  std::string prefix;     // weight-name prefix: "sub/" for a file in sub/, "" at the root
};

struct IndexedFile {
  std::unique_ptr<SourceFile> file;
  std::vector<WeightEntry> weights;  // in the file's order; `file` left 0 for the bundle to set
};

// A reader: indexes the file open on `fd` (a regular file, opened without
// following links; ownership passes to the reader, which closes it when it
// does not keep it). Reads every header, no weight data. Errors are
// kBundle naming the file, the weight and the problem (kIncomplete where the
// file may still be growing).
using OpenSourceFn = Result<IndexedFile> (*)(int fd, const SourceLocation& loc);

// --- Shared by the readers --------------------------------------------------

// A file whose weights are regions of it (.npy, .safetensors). In a folder
// bundle it is reopened beneath the root for each read, so no descriptor is
// held per file (a folder may hold thousands); a one-file bundle keeps its
// descriptor.
class RegionFile {
 public:
  // Takes `fd`: kept for a one-file bundle (loc.root_fd < 0), else closed.
  RegionFile(int fd, const SourceLocation& loc);
  ~RegionFile();
  RegionFile(const RegionFile&) = delete;
  RegionFile& operator=(const RegionFile&) = delete;
  // Bytes [offset, offset + length) for `where` (messages). The file must
  // still be `size` bytes long: kIncomplete if it changed since indexing.
  Result<std::unique_ptr<ByteSource>> OpenRegion(uint64_t size, uint64_t offset, uint64_t length,
                                                 const std::string& where) const;
  // The same file for another thread; `root_fd` is the new bundle's root.
  Result<std::unique_ptr<RegionFile>> Reopen(int root_fd) const;

 private:
  RegionFile() = default;
  int root_fd_ = -1;  // borrowed; -1 for a one-file bundle
  int own_fd_ = -1;   // the file, for a one-file bundle
  std::string rel_;
  std::string root_;  // the bundle path, for messages
  std::string path_;  // the file's path, for messages
};

// Closes an fd on scope exit unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser();
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int get() const { return fd_; }
  int release();
  void reset(int fd);

 private:
  int fd_;
};

// "bundle/x: is a symbolic link; weightdrop never follows links".
Status SymlinkError(const std::string& where);
// The error for a failed openat/fstatat(dirfd, name, no-follow) of `where`
// that failed with `err`: a link, a vanished entry (kIncomplete), or errno.
Status OpenFailure(int dirfd, const std::string& name, const std::string& where, int err);
// Opens `rel` under `root_fd` one component at a time, never following a
// link, and requires a regular file. `root` names the root in messages.
Result<int> OpenBeneath(int root_fd, const std::string& rel, const std::string& root);
// The file size of `fd`.
Result<uint64_t> FileSize(int fd, const std::string& where);
// `fd` duplicated (close-on-exec), for a reopened reader.
Result<int> DupFd(int fd, const std::string& where);
// Control bytes as \xNN; non-ASCII bytes too unless `s` is valid UTF-8.
std::string EscapeName(const std::string& s);
// "float32", "int64", "bool", "<U7", "bfloat16": for messages.
std::string DtypeName(const NpyDtype& d);
// "(2, 3)", "(4,)", "()".
std::string ShapeString(const std::vector<uint64_t>& shape);
// Fills w.shape, element_count and data_bytes (overflow-checked: an error
// naming `w.where` when the product does not fit 64 bits).
Status SetShape(WeightEntry& w, std::vector<uint64_t> shape);

}  // namespace wd
