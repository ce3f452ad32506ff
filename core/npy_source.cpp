#include "core/npy_source.h"

#include <unistd.h>

#include <string_view>

namespace wd {

// `actual` is the whole file or member size; `what` is "file" or "member".
Status CheckNpyDataSize(const NpyHeader& h, uint64_t actual, const std::string& where,
                        const char* what) {
  uint64_t expect = h.header_size + h.data_bytes;
  if (actual == expect) return Status::Ok();
  std::string msg = "header declares shape " + ShapeString(h.shape) + " " + DtypeName(h.dtype) +
                    " = " + std::to_string(h.data_bytes) + " bytes of data but the " + what +
                    " holds " + std::to_string(actual - h.header_size);
  if (actual < expect) {
    // A plain file may still be growing; a member of a complete zip cannot.
    const bool growing = std::string_view(what) == "file";
    return Status::Error(growing ? ErrorKind::kIncomplete : ErrorKind::kBundle,
                         where + ": truncated: " + msg);
  }
  return Status::Bundle(where + ": " + msg + " (trailing bytes)");
}

WeightEntry NpyWeight(std::string name, std::string where, const NpyHeader& h) {
  WeightEntry w;
  w.name = std::move(name);
  w.where = std::move(where);
  w.dtype = h.dtype;
  w.shape = h.shape;
  w.fortran_order = h.fortran_order;
  w.element_count = h.element_count;
  w.data_bytes = h.data_bytes;
  w.data_offset = h.header_size;
  return w;
}

namespace {

// A .npy file. In a folder bundle it is reopened beneath the root for each
// read (a folder may hold thousands: no descriptor is kept per file); a
// .npy bundle keeps its descriptor.
class NpySource : public SourceFile {
 public:
  NpySource(int root_fd, int own_fd, const SourceLocation& loc)
      : root_fd_(root_fd), own_fd_(own_fd), rel_(loc.rel), root_(RootOf(loc)) {}
  ~NpySource() override {
    if (own_fd_ >= 0) close(own_fd_);
  }
  NpySource(const NpySource&) = delete;
  NpySource& operator=(const NpySource&) = delete;

  Result<std::unique_ptr<ByteSource>> OpenData(const WeightEntry& w, bool) const override {
    int fd = own_fd_;
    if (fd < 0) {
      WD_ASSIGN_OR_RETURN(fd, OpenBeneath(root_fd_, rel_, root_));
    }
    FdCloser closer(own_fd_ < 0 ? fd : -1);
    WD_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd, w.where));
    const uint64_t expect = w.data_offset + w.data_bytes;
    if (size != expect) {
      return Status::Incomplete(w.where + ": changed size since it was indexed (" +
                                std::to_string(expect) + " bytes then, " + std::to_string(size) +
                                " now)");
    }
    closer.release();
    return std::unique_ptr<ByteSource>(
        new FileRegionSource(fd, w.data_offset, w.data_bytes, w.where, /*owns_fd=*/own_fd_ < 0));
  }

  Result<std::unique_ptr<SourceFile>> Reopen(int root_fd) const override {
    int own = -1;
    if (own_fd_ >= 0) {
      WD_ASSIGN_OR_RETURN(own, DupFd(own_fd_, rel_.empty() ? root_ : root_ + "/" + rel_));
    }
    SourceLocation loc;
    loc.rel = rel_;
    loc.where = root_;
    return std::unique_ptr<SourceFile>(new NpySource(root_fd, own, loc));
  }

 private:
  // The root's name for messages: the bundle path.
  static std::string RootOf(const SourceLocation& loc) {
    if (loc.rel.empty()) return loc.where;
    return loc.where.substr(0, loc.where.size() - loc.rel.size() - 1);
  }
  int root_fd_;  // borrowed; -1 for a .npy bundle
  int own_fd_;   // the file, for a .npy bundle; -1 in a folder
  std::string rel_;
  std::string root_;
};

Result<NpyHeader> ReadNpyFileHeader(int fd, const std::string& where) {
  WD_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd, where));
  FileRegionSource src(fd, 0, size, where, false);
  Result<NpyHeader> h = ReadNpyHeader(src, where);
  if (!h.ok() && size < kMaxNpyHeaderText &&
      h.status().message().find("truncated .npy header") != std::string::npos) {
    return Status::Incomplete(h.status().message());  // the file may still be growing
  }
  if (!h.ok()) return h.status();
  WD_RETURN_IF_ERROR(CheckNpyDataSize(*h, size, where, "file"));
  return h;
}

}  // namespace

Result<IndexedFile> OpenNpySource(int fd, const SourceLocation& loc) {
  FdCloser closer(fd);
  WD_ASSIGN_OR_RETURN(NpyHeader h, ReadNpyFileHeader(fd, loc.where));
  const std::string& base = loc.file_name;
  IndexedFile out;
  out.weights.push_back(NpyWeight(loc.prefix + base.substr(0, base.size() - 4), loc.where, h));
  const bool keep = loc.root_fd < 0;  // a .npy bundle keeps its descriptor
  out.file.reset(new NpySource(loc.root_fd, keep ? closer.release() : -1, loc));
  return out;
}

}  // namespace wd
