// .npz members through libzip 1.7; the rules we enforce are in docs/formats.md.
#include "core/npz_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "core/inflate.h"

namespace wd {
namespace {

std::string ZipErrorString(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string s = zip_error_strerror(&e);
  zip_error_fini(&e);
  return s;
}

// libzip reports I/O trouble with these; everything else is the file's fault.
bool IsSystemError(int code) {
  return code == ZIP_ER_READ || code == ZIP_ER_SEEK || code == ZIP_ER_OPEN ||
         code == ZIP_ER_MEMORY || code == ZIP_ER_TELL;
}

// Streams a window of a member's data straight from the file, as stored
// (deflated bytes stay deflated), without a CRC check: exactly `size` bytes;
// a file that ends sooner is an error.
class RangeSource : public ByteSource {
 public:
  RangeSource(zip_source_t* src, uint64_t size, std::string where)
      : src_(src), size_(size), where_(std::move(where)) {}
  ~RangeSource() override {
    zip_source_close(src_);
    zip_source_free(src_);
  }
  RangeSource(const RangeSource&) = delete;
  RangeSource& operator=(const RangeSource&) = delete;

  Result<size_t> Read(uint8_t* buf, size_t n) override {
    const uint64_t want = std::min<uint64_t>(n, size_ - pos_);
    if (want == 0) return size_t{0};
    const zip_int64_t r = zip_source_read(src_, buf, want);
    if (r < 0) {
      zip_error_t* e = zip_source_error(src_);
      std::string msg = where_ + ": " + zip_error_strerror(e) + " (after " + std::to_string(pos_) +
                        " of " + std::to_string(size_) + " bytes)";
      return IsSystemError(zip_error_code_zip(e)) ? Status::Environment(msg) : Status::Bundle(msg);
    }
    if (r == 0) {
      return Status::Bundle(where_ + ": ends after " + std::to_string(pos_) + " of " +
                            std::to_string(size_) + " bytes (did it change while being read?)");
    }
    pos_ += static_cast<uint64_t>(r);
    return static_cast<size_t>(r);
  }

 private:
  zip_source_t* src_;
  uint64_t size_;
  std::string where_;
  uint64_t pos_ = 0;
};

// A window of member `index`'s data through zip_source_zip, `size` bytes
// long. libzip checks the CRC of a window only when it covers a whole member
// read uncompressed: callers ask for part of a stored member (start > 0 or
// len < its size), or for a deflated member's compressed bytes (start 0,
// len -1, which zip_source_zip reads with ZIP_FL_COMPRESSED).
Result<std::unique_ptr<ByteSource>> OpenWindow(zip_t* z, uint64_t index, uint64_t start,
                                               zip_int64_t len, uint64_t size,
                                               const std::string& where) {
  zip_source_t* src = zip_source_zip(z, z, index, 0, start, len);
  if (src == nullptr || zip_source_open(src) != 0) {
    zip_error_t* e = src != nullptr ? zip_source_error(src) : zip_get_error(z);
    std::string msg = where + ": cannot open: " + zip_error_strerror(e);
    const bool system = IsSystemError(zip_error_code_zip(e));
    zip_source_free(src);
    return system ? Status::Environment(msg) : Status::Bundle(msg);
  }
  return std::unique_ptr<ByteSource>(new RangeSource(src, size, where));
}

// Member `m`'s data as the archive holds it, not CRC-checked by libzip
// (MemberSource checks it once, faster): a deflated member's compressed
// bytes in one window; a stored member's in two, [0, size - 1) and its last
// byte, as libzip would CRC a window over a whole stored member with zlib.
// A 1-byte stored member is one window, whose byte libzip checks too.
class RawSource : public ByteSource {
 public:
  RawSource(zip_t* z, const NpzMember& m, std::string where)
      : z_(z), index_(m.index), where_(std::move(where)) {
    if (!m.stored) {
      if (m.comp_size > 0) pieces_[n_pieces_++] = {0, -1, m.comp_size};
    } else if (m.size == 1) {
      pieces_[n_pieces_++] = {0, 1, 1};
    } else if (m.size > 1) {
      const auto head = static_cast<zip_int64_t>(m.size - 1);
      pieces_[n_pieces_++] = {0, head, m.size - 1};
      pieces_[n_pieces_++] = {m.size - 1, 1, 1};
    }
  }

  Result<size_t> Read(uint8_t* buf, size_t n) override {
    for (;;) {
      if (cur_ != nullptr) {
        WD_ASSIGN_OR_RETURN(size_t r, cur_->Read(buf, n));
        if (r > 0) return r;
        cur_.reset();
      }
      if (next_ == n_pieces_) return size_t{0};
      const Piece& p = pieces_[next_++];
      WD_ASSIGN_OR_RETURN(cur_, OpenWindow(z_, index_, p.start, p.len, p.size, where_));
    }
  }

 private:
  struct Piece {
    uint64_t start = 0;
    zip_int64_t len = 0;  // as zip_source_zip takes it
    uint64_t size = 0;
  };
  zip_t* z_;
  uint64_t index_;
  std::string where_;
  Piece pieces_[2];
  size_t n_pieces_ = 0;
  size_t next_ = 0;
  std::unique_ptr<ByteSource> cur_;
};

// Streams one member: exactly `size` bytes, CRC-32 checked against the
// central directory. A deflated member is inflated from its raw bytes in
// bounded pieces; at the declared size, one more byte must not inflate, so
// a member never inflates past size + 1.
class MemberSource : public ByteSource {
 public:
  MemberSource(std::unique_ptr<ByteSource> raw, const NpzMember& m, InflateImpl impl,
               std::string where)
      : raw_(std::move(raw)),
        size_(m.size),
        crc_want_(m.crc),
        impl_(impl),
        where_(std::move(where)) {
    // A deflated member with no compressed bytes at all reads as empty, as
    // libzip read it: its declared size then decides.
    if (!m.stored && m.comp_size > 0) {
      inflater_ = Inflater::Create(impl);
      in_.reset(new uint8_t[kInBuffer]);
    }
  }

  Result<size_t> Read(uint8_t* buf, size_t n) override {
    if (pos_ == size_) return ReadEnd();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n, size_ - pos_));
    WD_ASSIGN_OR_RETURN(size_t r,
                        inflater_ != nullptr ? Inflate(buf, want) : raw_->Read(buf, want));
    if (r == 0) {
      return Status::Bundle(where_ + ": holds only " + std::to_string(pos_) +
                            " bytes but declares " + std::to_string(size_));
    }
    crc_ = Crc32(impl_, crc_, buf, r);
    pos_ += r;
    // Check the end (and so the CRC) with the last bytes, not on a later
    // call: consumers read exactly the declared size and stop.
    if (pos_ == size_) {
      Result<size_t> end = ReadEnd();
      if (!end.ok()) return end.status();
    }
    return r;
  }

 private:
  static constexpr size_t kInBuffer = 128u << 10;

  // At the declared size: one more byte must not inflate, and the data must
  // have the CRC-32 the central directory records.
  Result<size_t> ReadEnd() {
    if (checked_end_) return size_t{0};
    if (inflater_ != nullptr) {
      uint8_t extra;
      WD_ASSIGN_OR_RETURN(size_t r, Inflate(&extra, 1));
      if (r > 0) {
        return Status::Bundle(where_ + ": inflates past its declared " + std::to_string(size_) +
                              " bytes");
      }
    }
    if (crc_ != crc_want_) {
      return Status::Bundle(where_ + ": CRC mismatch: data is corrupt: its " +
                            std::to_string(size_) + " bytes have CRC-32 " + Hex(crc_) +
                            ", the archive records " + Hex(crc_want_));
    }
    checked_end_ = true;
    return size_t{0};
  }

  // Inflates up to n bytes into buf; 0 once the stream has ended.
  Result<size_t> Inflate(uint8_t* buf, size_t n) {
    while (!ended_) {
      if (in_pos_ == in_len_ && !raw_eof_) {
        WD_ASSIGN_OR_RETURN(in_len_, raw_->Read(in_.get(), kInBuffer));
        in_pos_ = 0;
        raw_eof_ = in_len_ == 0;
      }
      Result<Inflater::Step> step =
          inflater_->Inflate(in_.get() + in_pos_, in_len_ - in_pos_, buf, n);
      if (!step.ok()) {
        return Status::Error(step.status().kind(), where_ + ": " + step.status().message() + At());
      }
      in_pos_ += step->consumed;
      ended_ = step->ended;
      if (step->produced > 0) return step->produced;
      if (step->consumed == 0 && in_pos_ == in_len_ && raw_eof_) {
        return Status::Bundle(where_ +
                              ": deflate stream is truncated: its compressed bytes end "
                              "before the stream does" +
                              At());
      }
      if (step->consumed == 0 && in_pos_ < in_len_ && !ended_) {
        return Status::Internal(where_ + ": inflate made no progress" + At());
      }
    }
    return size_t{0};
  }

  std::string At() const {
    return " (after " + std::to_string(pos_) + " of " + std::to_string(size_) + " bytes)";
  }
  static std::string Hex(uint32_t v) {
    char s[11];
    std::snprintf(s, sizeof s, "0x%08x", v);
    return s;
  }

  std::unique_ptr<ByteSource> raw_;
  uint64_t size_;
  uint32_t crc_want_;
  InflateImpl impl_;
  std::string where_;
  std::unique_ptr<Inflater> inflater_;  // null for stored (and empty) members
  std::unique_ptr<uint8_t[]> in_;       // compressed bytes read, not yet inflated
  size_t in_pos_ = 0, in_len_ = 0;
  bool raw_eof_ = false;
  bool ended_ = false;
  uint64_t pos_ = 0;
  uint32_t crc_ = 0;
  bool checked_end_ = false;
};

// pread that retries EINTR; returns the count read or -1.
ssize_t PreadAll(int fd, uint8_t* buf, size_t n, off_t at) {
  ssize_t r;
  do {
    r = pread(fd, buf, n, at);
  } while (r < 0 && errno == EINTR);
  return r;
}

// True if the tail where the end record must sit (its 22 bytes plus up to
// 64 KiB of comment) holds a whole one: signature "PK\5\6", all 22 bytes,
// and the comment it announces.
bool HasWholeEndRecord(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  off_t span = std::min<off_t>(st.st_size, 65535 + 22);
  std::vector<uint8_t> tail(static_cast<size_t>(span));
  if (PreadAll(fd, tail.data(), tail.size(), st.st_size - span) != span) return false;
  for (size_t p = 0; p + 22 <= tail.size(); ++p) {
    if (tail[p] != 'P' || tail[p + 1] != 'K' || tail[p + 2] != 5 || tail[p + 3] != 6) continue;
    size_t comment = tail[p + 20] | (tail[p + 21] << 8);
    if (p + 22 + comment <= tail.size()) return true;
  }
  return false;
}

// Tells a zip still being written (starts like a zip, no end record yet)
// from a file that is not a zip at all, or a complete but corrupt one.
Status OpenError(int fd, int code, const std::string& where) {
  uint8_t head[4] = {0, 0, 0, 0};
  ssize_t n = PreadAll(fd, head, sizeof head, 0);
  if (n == 0) return Status::Incomplete(where + ": empty file (still being written?)");
  bool zip_start = n == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
  if (code == ZIP_ER_NOZIP && zip_start && !HasWholeEndRecord(fd)) {
    return Status::Incomplete(where +
                              ": zip has no end-of-central-directory record: truncated or "
                              "still being written");
  }
  if (code == ZIP_ER_NOZIP && !zip_start) {
    return Status::Bundle(where + ": not a zip archive (a .npz is a zip)");
  }
  if (code == ZIP_ER_NOZIP) {
    return Status::Bundle(where +
                          ": corrupt zip: its end-of-central-directory record does not "
                          "point at a valid central directory");
  }
  if (code == ZIP_ER_EXISTS) return Status::Bundle(where + ": two members have the same name");
  if (code == ZIP_ER_INCONS) {
    // libzip gives one code for both causes and no detail.
    return Status::Bundle(where +
                          ": zip archive is inconsistent: its local and central headers "
                          "disagree, or a member name flagged as UTF-8 is not valid UTF-8");
  }
  if (code == ZIP_ER_SEEK) {
    // Seeking in a regular file fails only on an offset no file can reach
    // (EFBIG, EINVAL), which the archive's own headers gave.
    return Status::Bundle(where +
                          ": corrupt zip: its headers point at an offset no file can hold (" +
                          ZipErrorString(code) + ")");
  }
  std::string msg = where + ": cannot open as zip: " + ZipErrorString(code);
  return IsSystemError(code) ? Status::Environment(msg) : Status::Bundle(msg);
}

Result<NpzMember> StatMember(zip_t* z, uint64_t i, const std::string& where) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(z, i, ZIP_FL_ENC_RAW, &st) != 0) {
    return Status::Bundle(where + ": cannot read zip entry " + std::to_string(i) + ": " +
                          zip_strerror(z));
  }
  const zip_uint64_t need = ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE |
                            ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD | ZIP_STAT_CRC;
  if ((st.valid & need) != need) {
    return Status::Bundle(where + ": zip entry " + std::to_string(i) +
                          " lacks size, method or CRC");
  }
  NpzMember m{st.name, i, st.size, st.comp_size, st.comp_method == ZIP_CM_STORE, st.crc};
  std::string member = where + ": member '" + m.name + "'";
  if (st.encryption_method != ZIP_EM_NONE) return Status::Bundle(member + ": is encrypted");
  if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE) {
    return Status::Bundle(member + ": uses compression method " + std::to_string(st.comp_method) +
                          " (only stored and deflate are read)");
  }
  return m;
}

// Deflate cannot expand data more than 1032 times (a 258-byte match costs
// at least 2 bits); the slack covers a member's few bytes of stream framing.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr uint64_t kDeflateSlack = 64;

// What the headers declare must fit what the file holds, before anything
// is planned from it: a member's compressed bytes lie inside the file and
// do not overlap another's, a stored member is its compressed bytes, and a
// deflated one inflates at most kMaxDeflateRatio times.
Status CheckDeclaredSizes(const std::vector<NpzMember>& members, uint64_t file_size,
                          const std::string& where) {
  uint64_t compressed = 0;
  for (const NpzMember& m : members) {
    const std::string member = where + ": member '" + m.name + "'";
    if (m.comp_size > file_size || compressed + m.comp_size > file_size) {
      return Status::Bundle(member + ": declares " + std::to_string(m.comp_size) +
                            " compressed bytes, but with the members before it that is more "
                            "than the whole file holds (" +
                            std::to_string(file_size) + " bytes)");
    }
    compressed += m.comp_size;
    if (m.stored && m.size != m.comp_size) {
      return Status::Bundle(member + ": is stored, but declares " + std::to_string(m.size) +
                            " bytes and " + std::to_string(m.comp_size) + " compressed bytes");
    }
    if (!m.stored && m.size > m.comp_size * kMaxDeflateRatio + kDeflateSlack) {
      return Status::Bundle(member + ": declares " + std::to_string(m.size) +
                            " bytes inflated from " + std::to_string(m.comp_size) +
                            " compressed: more than deflate can expand to (" +
                            std::to_string(kMaxDeflateRatio) + "x)");
    }
  }
  return Status::Ok();
}

uint64_t Le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool ReadAt(int fd, std::vector<uint8_t>& buf, uint64_t at, uint64_t n, uint64_t file_size) {
  if (at > file_size || n > file_size - at || n > (256u << 20)) return false;
  buf.resize(static_cast<size_t>(n));
  return PreadAll(fd, buf.data(), buf.size(), static_cast<off_t>(at)) == static_cast<ssize_t>(n);
}

// Fills in each member's data_start from the zip's own headers (libzip does
// not tell): the end record (zip64 where it says so), the central directory
// entries in order, and each one's local header. A member's offset is kept
// only when its central entry has the name, compressed size and method
// libzip reported for it, its local header has the same name, and its bytes
// lie inside the file; anything else leaves it unknown. Used to feed the
// bundle digest from the reader's reads (core/digest_feed.h), so a wrong
// offset would be a wrong digest: hence every check.
void FindDataStarts(int fd, uint64_t file_size, std::vector<NpzMember>& members) {
  std::vector<uint8_t> buf;
  const uint64_t span = std::min<uint64_t>(file_size, 65535 + 22);
  if (!ReadAt(fd, buf, file_size - span, span, file_size)) return;
  // The end record that ends the file exactly (np.savez writes no comment).
  size_t end = buf.size();
  for (size_t p = buf.size() >= 22 ? buf.size() - 22 + 1 : 0; p-- > 0;) {
    if (buf[p] == 'P' && buf[p + 1] == 'K' && buf[p + 2] == 5 && buf[p + 3] == 6 &&
        p + 22 + Le(&buf[p + 20], 2) == buf.size()) {
      end = p;
      break;
    }
  }
  if (end == buf.size()) return;
  const uint64_t end_at = file_size - span + end;
  uint64_t entries = Le(&buf[end + 10], 2);
  uint64_t cd_size = Le(&buf[end + 12], 4);
  uint64_t cd_at = Le(&buf[end + 16], 4);
  if (entries == 0xffff || cd_size == 0xffffffff || cd_at == 0xffffffff) {
    std::vector<uint8_t> loc;  // the zip64 end record locator, just before
    if (end_at < 20 || !ReadAt(fd, loc, end_at - 20, 20, file_size)) return;
    if (Le(loc.data(), 4) != 0x07064b50) return;
    std::vector<uint8_t> rec;
    if (!ReadAt(fd, rec, Le(&loc[8], 8), 56, file_size) || Le(rec.data(), 4) != 0x06064b50) return;
    entries = Le(&rec[32], 8);
    cd_size = Le(&rec[40], 8);
    cd_at = Le(&rec[48], 8);
  }
  if (entries != members.size() || !ReadAt(fd, buf, cd_at, cd_size, file_size)) return;
  std::vector<uint8_t> local;
  size_t p = 0;
  for (NpzMember& m : members) {
    if (p + 46 > buf.size() || Le(&buf[p], 4) != 0x02014b50) return;
    const uint64_t method = Le(&buf[p + 10], 2);
    uint64_t comp = Le(&buf[p + 20], 4);
    uint64_t size = Le(&buf[p + 24], 4);
    const size_t name_len = Le(&buf[p + 28], 2);
    const size_t extra_len = Le(&buf[p + 30], 2);
    const size_t comment_len = Le(&buf[p + 32], 2);
    uint64_t lho = Le(&buf[p + 42], 4);
    const size_t name_at = p + 46;
    const size_t extra_at = name_at + name_len;
    p = extra_at + extra_len + comment_len;
    if (p > buf.size()) return;
    // zip64 extra (0x0001): the 64-bit values of the fields saturated above,
    // in this order.
    for (size_t e = extra_at; e + 4 <= extra_at + extra_len;) {
      const uint64_t id = Le(&buf[e], 2), len = Le(&buf[e + 2], 2);
      if (e + 4 + len > extra_at + extra_len) return;
      if (id == 0x0001) {
        size_t v = e + 4;
        for (uint64_t* field : {&size, &comp, &lho}) {
          if (*field != 0xffffffff) continue;
          if (v + 8 > e + 4 + len) return;
          *field = Le(&buf[v], 8);
          v += 8;
        }
      }
      e += 4 + len;
    }
    const std::string name(reinterpret_cast<const char*>(&buf[name_at]), name_len);
    if (name != m.name || comp != m.comp_size || (method == 0) != m.stored) continue;
    if (!ReadAt(fd, local, lho, 30, file_size) || Le(local.data(), 4) != 0x04034b50) continue;
    const uint64_t local_name = Le(&local[26], 2), local_extra = Le(&local[28], 2);
    std::vector<uint8_t> local_name_bytes;
    if (!ReadAt(fd, local_name_bytes, lho + 30, local_name, file_size) ||
        std::string(local_name_bytes.begin(), local_name_bytes.end()) != name) {
      continue;
    }
    const uint64_t start = lho + 30 + local_name + local_extra;
    if (start > file_size || m.comp_size > file_size - start) continue;
    m.data_start = start;
  }
}

}  // namespace

Result<std::unique_ptr<NpzArchive>> NpzArchive::Open(int fd, const std::string& where) {
  int code = 0;
  // Kept for Reopen: zip_fdopen closes `fd` itself once it has its own copy.
  const int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  zip_t* z = zip_fdopen(fd, ZIP_CHECKCONS, &code);
  if (z == nullptr) {  // fd is still ours
    Status st = OpenError(fd, code, where);
    close(fd);
    if (keep >= 0) close(keep);
    return st;
  }
  std::unique_ptr<NpzArchive> a(new NpzArchive());
  a->zip_ = z;
  a->where_ = where;
  a->file_fd_ = keep;
  zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    WD_ASSIGN_OR_RETURN(NpzMember m, StatMember(z, static_cast<uint64_t>(i), where));
    a->members_.push_back(std::move(m));
  }
  struct stat st;
  if (keep < 0 || fstat(keep, &st) != 0) return ErrnoStatus("stat " + where, errno);
  WD_RETURN_IF_ERROR(CheckDeclaredSizes(a->members_, static_cast<uint64_t>(st.st_size), where));
  FindDataStarts(keep, static_cast<uint64_t>(st.st_size), a->members_);
  return a;
}

NpzArchive::~NpzArchive() {
  if (zip_ != nullptr) zip_discard(zip_);
  if (file_fd_ >= 0) close(file_fd_);
}

Result<std::unique_ptr<NpzArchive>> NpzArchive::Reopen() const {
  if (file_fd_ < 0) return Status::Environment(where_ + ": cannot reopen: no descriptor kept");
  const std::string self = "/proc/self/fd/" + std::to_string(file_fd_);
  const int fd = open(self.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(where_ + ": cannot reopen through " + self, errno);
  WD_ASSIGN_OR_RETURN(std::unique_ptr<NpzArchive> a, Open(fd, where_));
  bool same = a->members_.size() == members_.size();
  for (size_t i = 0; same && i < members_.size(); ++i) {
    const NpzMember &x = members_[i], &y = a->members_[i];
    same = x.name == y.name && x.size == y.size && x.comp_size == y.comp_size &&
           x.stored == y.stored && x.crc == y.crc;
  }
  if (!same) return Status::Bundle(where_ + ": changed while being read");
  return a;
}

Result<std::unique_ptr<ByteSource>> NpzArchive::OpenMember(const NpzMember& m) const {
  std::string member = where_ + ": member '" + m.name + "'";
  auto raw = std::make_unique<RawSource>(zip_, m, member);
  return std::unique_ptr<ByteSource>(
      new MemberSource(std::move(raw), m, ActiveInflateImpl(), std::move(member)));
}

Result<std::unique_ptr<ByteSource>> NpzArchive::OpenStoredRange(const NpzMember& m, uint64_t start,
                                                                uint64_t length) const {
  const std::string member = where_ + ": member '" + m.name + "'";
  if (!m.stored || start == 0 || start > m.size || length > m.size - start) {
    return Status::Bundle(member + ": internal: bad raw range " + std::to_string(start) + "+" +
                          std::to_string(length));
  }
  return OpenWindow(zip_, m.index, start, static_cast<zip_int64_t>(length), length, member);
}

}  // namespace wd
