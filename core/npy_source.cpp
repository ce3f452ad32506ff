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

class NpySource : public SourceFile {
 public:
  explicit NpySource(std::unique_ptr<RegionFile> file) : file_(std::move(file)) {}

  Result<std::unique_ptr<ByteSource>> OpenData(const WeightEntry& w, bool) const override {
    return file_->OpenRegion(w.data_offset + w.data_bytes, w.data_offset, w.data_bytes, w.where);
  }

  std::optional<uint64_t> RawDataOffset(const WeightEntry& w) const override {
    return w.data_offset;
  }

  Result<std::unique_ptr<SourceFile>> Reopen(int root_fd) const override {
    WD_ASSIGN_OR_RETURN(std::unique_ptr<RegionFile> copy, file_->Reopen(root_fd));
    return std::unique_ptr<SourceFile>(new NpySource(std::move(copy)));
  }

 private:
  std::unique_ptr<RegionFile> file_;
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
  out.file.reset(new NpySource(std::make_unique<RegionFile>(closer.release(), loc)));
  return out;
}

}  // namespace wd
