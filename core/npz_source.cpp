#include "core/npz_source.h"

#include <algorithm>

#include "core/npy_source.h"
#include "core/npz_archive.h"

namespace wd {
namespace {

class NpzSource : public SourceFile {
 public:
  explicit NpzSource(std::unique_ptr<NpzArchive> archive) : archive_(std::move(archive)) {}

  Result<std::unique_ptr<ByteSource>> OpenData(const WeightEntry& w,
                                               bool check_crc) const override {
    const NpzMember& m = archive_->members()[w.item];
    if (!check_crc && m.stored) return archive_->OpenStoredRange(m, w.data_offset, w.data_bytes);
    WD_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, archive_->OpenMember(m));
    uint8_t skip[4096];
    for (uint64_t left = w.data_offset; left > 0;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, sizeof skip));
      WD_RETURN_IF_ERROR(ReadExact(*src, skip, n, w.where, w.data_offset - left));
      left -= n;
    }
    return src;
  }

  bool IsCompressed(const WeightEntry& w) const override {
    return !archive_->members()[w.item].stored;
  }

  std::optional<uint64_t> RawDataOffset(const WeightEntry& w) const override {
    const NpzMember& m = archive_->members()[w.item];
    if (!m.stored || m.data_start == NpzMember::kUnknownOffset) return std::nullopt;
    return m.data_start + w.data_offset;
  }

  Result<std::unique_ptr<SourceFile>> Reopen(int) const override {
    WD_ASSIGN_OR_RETURN(std::unique_ptr<NpzArchive> copy, archive_->Reopen());
    return std::unique_ptr<SourceFile>(new NpzSource(std::move(copy)));
  }

 private:
  std::unique_ptr<NpzArchive> archive_;
};

}  // namespace

Result<IndexedFile> OpenNpzSource(int fd, const SourceLocation& loc) {
  WD_ASSIGN_OR_RETURN(std::unique_ptr<NpzArchive> a, NpzArchive::Open(fd, loc.where));
  IndexedFile out;
  const std::vector<NpzMember>& members = a->members();
  for (size_t i = 0; i < members.size(); ++i) {
    const NpzMember& m = members[i];
    std::string where = a->where() + ": member '" + EscapeName(m.name) + "'";
    if (!m.name.ends_with(".npy")) {
      return Status::Bundle(where + ": is not a .npy (np.savez writes only .npy members)");
    }
    WD_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, a->OpenMember(m));
    WD_ASSIGN_OR_RETURN(NpyHeader h, ReadNpyHeader(*src, where));
    WD_RETURN_IF_ERROR(CheckNpyDataSize(h, m.size, where, "member"));
    WeightEntry w = NpyWeight(loc.prefix + m.name.substr(0, m.name.size() - 4), where, h);
    w.item = i;
    out.weights.push_back(std::move(w));
  }
  out.file.reset(new NpzSource(std::move(a)));
  return out;
}

}  // namespace wd
