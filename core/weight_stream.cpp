#include "core/weight_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/digest_feed.h"

namespace wd {

// Elements per chunk: 256 Ki elements keeps a chunk at or below 1 MiB for
// float32 (16 MiB for the widest strings) while amortizing per-call costs.
constexpr size_t kChunkElements = 256 * 1024;
constexpr size_t kMaxChunkBytes = 16u << 20;
constexpr size_t kMinChunkBytes = 1u << 20;
constexpr size_t kMaxSpare = 16;  // buffers kept for reuse
constexpr size_t kReadPiece = 256u << 10;

// One weight's C-order source bytes in an unlinked temporary file, so a
// deflated member is inflated once although affine quantization reads it
// twice. Disk-backed ($TMPDIR or /tmp): memory stays bounded. If the file
// cannot be made or written, the second pass inflates again instead.
class ScratchFile {
 public:
  static std::unique_ptr<ScratchFile> Create() {
    const char* dir = std::getenv("TMPDIR");
    const int fd =
        open(dir != nullptr && *dir != '\0' ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return nullptr;
    return std::unique_ptr<ScratchFile>(new ScratchFile(fd));
  }
  ~ScratchFile() { close(fd_); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  void Append(const uint8_t* p, size_t n) {
    while (ok_ && n > 0) {
      const ssize_t k = write(fd_, p, n);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        ok_ = false;
        break;
      }
      p += k;
      n -= static_cast<size_t>(k);
      size_ += static_cast<uint64_t>(k);
    }
  }
  bool ok() const { return ok_; }
  std::unique_ptr<ByteSource> Reader(const std::string& where) const {
    return std::make_unique<FileRegionSource>(fd_, 0, size_, where, false);
  }

 private:
  explicit ScratchFile(int fd) : fd_(fd) {}
  int fd_;
  uint64_t size_ = 0;
  bool ok_ = true;
};

namespace {

// Reorders a Fortran-order array (bytes of `item` each) into C order.
std::vector<uint8_t> FortranToC(const std::vector<uint8_t>& f, const std::vector<uint64_t>& shape,
                                size_t item) {
  std::vector<uint8_t> c(f.size());
  const size_t nd = shape.size();
  std::vector<uint64_t> fstride(nd, 1), idx(nd, 0);
  for (size_t k = 1; k < nd; ++k) fstride[k] = fstride[k - 1] * shape[k - 1];
  const uint64_t count = f.size() / item;
  uint64_t src = 0;  // Fortran offset (in elements) of the current C index
  for (uint64_t out = 0; out < count; ++out) {
    std::memcpy(&c[out * item], &f[src * item], item);
    for (size_t k = nd; k-- > 0;) {  // advance the C-order index, last axis fastest
      if (++idx[k] < shape[k]) {
        src += fstride[k];
        break;
      }
      src -= fstride[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
  return c;
}

// A stream over the weight's elements in C order.
Result<std::unique_ptr<ByteSource>> OpenCOrder(const Bundle& bundle, const WeightEntry& w,
                                               bool check_crc) {
  WD_ASSIGN_OR_RETURN(auto src, bundle.OpenData(w, check_crc));
  if (!w.fortran_order || w.shape.size() < 2) return src;
  // Transposing needs the whole array; Fortran-order inputs are the one case
  // held in memory (documented in docs/formats.md).
  std::vector<uint8_t> all(w.data_bytes);
  WD_RETURN_IF_ERROR(ReadExact(*src, all.data(), all.size(), w.where, w.data_offset));
  return std::unique_ptr<ByteSource>(new MemorySource(FortranToC(all, w.shape, w.dtype.item_size)));
}

size_t ChunkElements(const WeightEntry& w) {
  return std::max<size_t>(1, std::min(kChunkElements, kMaxChunkBytes / w.dtype.item_size));
}

// Two readers when some read inflates: inflating is the slow step (~250
// MB/s), and alternate weights inflate on both cores while the caller
// encodes. Stored data reads faster than it is hashed, so one reader is
// enough there.
size_t LaneCount(const Bundle& bundle, const std::vector<WeightRead>& reads) {
  if (std::thread::hardware_concurrency() < 2) return 1;
  size_t weights = 0;
  bool inflates = false;
  for (const WeightRead& r : reads) {
    if (r.second_pass) continue;
    ++weights;
    inflates = inflates || bundle.IsCompressed(bundle.weights()[r.entry]);
  }
  return inflates && weights >= 2 ? 2 : 1;
}

}  // namespace

WeightStream::WeightStream(const Bundle& bundle, std::vector<WeightRead> reads, bool threaded,
                           size_t ahead_bytes, FileDigestFeed* feed)
    : reads_(std::move(reads)),
      threaded_(threaded),
      ahead_bytes_(ahead_bytes),
      feed_(bundle.is_directory() ? nullptr : feed),
      lane_of_(reads_.size(), 0) {
  lanes_.push_back(std::make_unique<Lane>());
  lanes_[0]->bundle = &bundle;
  if (threaded_ && LaneCount(bundle, reads_) == 2) {
    // A second reader needs handles of its own; without them, one reader.
    Result<std::unique_ptr<Bundle>> copy = bundle.Reopen();
    if (copy.ok()) {
      lanes_.push_back(std::make_unique<Lane>());
      lanes_[1]->index = 1;
      lanes_[1]->own = std::move(*copy);
      lanes_[1]->bundle = lanes_[1]->own.get();
      size_t weight = 0;
      for (size_t i = 0; i < reads_.size(); ++i) {
        if (!reads_[i].second_pass && i > 0) ++weight;
        lane_of_[i] = static_cast<uint8_t>(weight % 2);
      }
    }
  }
  if (!threaded_) return;
  for (auto& lane : lanes_) {
    Lane* l = lane.get();
    l->thread = std::thread([this, l] { Run(*l); });
  }
}

WeightStream::~WeightStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& lane : lanes_) {
    if (lane->thread.joinable()) lane->thread.join();
  }
}

Status WeightStream::OpenRead(Lane& lane, const WeightRead& r) {
  const WeightEntry& w = lane.bundle->weights()[r.entry];
  if (r.second_pass && lane.scratch != nullptr && lane.scratch->ok()) {
    lane.src = lane.scratch->Reader(w.where);
    return Status::Ok();
  }
  lane.scratch.reset();
  if (r.keep_for_second && lane.bundle->IsCompressed(w)) lane.scratch = ScratchFile::Create();
  // A second pass re-reads a stored member raw: the first pass checked its CRC.
  WD_ASSIGN_OR_RETURN(lane.src, OpenCOrder(*lane.bundle, w, /*check_crc=*/!r.second_pass));
  // The bundle digest is fed a first pass's bytes as they come from the
  // file (a transposed Fortran array comes from memory, in another order).
  lane.raw_at.reset();
  const bool transposed = w.fortran_order && w.shape.size() >= 2;
  if (feed_ != nullptr && !r.second_pass && !transposed) {
    lane.raw_at = lane.bundle->RawDataOffset(w);
  }
  return Status::Ok();
}

WeightStream::Chunk WeightStream::TakeBuffer(Lane& lane, size_t capacity) {
  if (threaded_) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < lane.spare.size(); ++i) {
      if (lane.spare[i].capacity < capacity) continue;
      Chunk c = std::move(lane.spare[i]);
      lane.spare.erase(lane.spare.begin() + static_cast<ptrdiff_t>(i));
      return c;
    }
  } else if (current_.capacity >= capacity) {
    return std::move(current_);
  }
  // Not zero-filled: it is read into at once. At least kMinChunkBytes, so
  // buffers are reused from weight to weight.
  capacity = std::max(capacity, kMinChunkBytes);
  return Chunk{std::unique_ptr<uint8_t[]>(new uint8_t[capacity]), 0, capacity};
}

Result<bool> WeightStream::ProduceOne(Lane& lane, Chunk& out) {
  while (lane.read < reads_.size() && lane_of_[lane.read] != lane.index) ++lane.read;
  if (lane.read == reads_.size()) return false;
  const WeightRead& r = reads_[lane.read];
  const WeightEntry& w = lane.bundle->weights()[r.entry];
  if (lane.src == nullptr) WD_RETURN_IF_ERROR(OpenRead(lane, r));
  const size_t item = w.dtype.item_size;
  const uint64_t left = w.element_count - lane.produced;
  if (left == 0) {  // end of this read
    out = Chunk{};
    lane.src.reset();
    if (!r.keep_for_second) lane.scratch.reset();
    lane.produced = 0;
    ++lane.read;
    return true;
  }
  const size_t n = static_cast<size_t>(std::min<uint64_t>(ChunkElements(w), left));
  out = TakeBuffer(lane, n * item);
  // Read in pieces that stay in L2 while libzip/zlib CRC-check (or inflate
  // into) them: whole-MiB reads left the CRC reading back from memory.
  const uint64_t at = w.data_offset + lane.produced * item;
  for (size_t done = 0; done < n * item;) {
    const size_t piece = std::min(n * item - done, kReadPiece);
    WD_RETURN_IF_ERROR(ReadExact(*lane.src, out.data.get() + done, piece, w.where, at + done));
    if (lane.raw_at)
      feed_->Offer(*lane.raw_at + lane.produced * item + done, out.data.get() + done, piece);
    done += piece;
  }
  if (r.keep_for_second && lane.scratch != nullptr) lane.scratch->Append(out.data.get(), n * item);
  out.size = n * item;
  lane.produced += n;
  return true;
}

void WeightStream::Run(Lane& lane) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || lane.queued_bytes < ahead_bytes_; });
      if (stop_) return;
    }
    Chunk c;
    Result<bool> more = ProduceOne(lane, c);
    std::lock_guard<std::mutex> lock(mu_);
    if (!more.ok()) lane.error = OnBundleSide(more.status());
    if (!more.ok() || !*more) {
      lane.done = true;
      cv_.notify_all();
      return;
    }
    lane.queued_bytes += std::max<size_t>(c.size, 1);
    lane.ready.push_back(std::move(c));
    cv_.notify_all();
  }
}

Result<std::span<const uint8_t>> WeightStream::Next() {
  if (consumed_read_ >= reads_.size()) {
    return Status::Internal("weight stream read past its last weight");
  }
  Lane& lane = *lanes_[lane_of_[consumed_read_]];
  if (!threaded_) {
    Chunk c;
    Result<bool> produced = ProduceOne(lane, c);
    if (!produced.ok()) return OnBundleSide(produced.status());
    if (!*produced) return Status::Internal("weight stream read past its last weight");
    if (c.data == nullptr) {
      ++consumed_read_;
      return std::span<const uint8_t>();
    }
    current_ = std::move(c);
    return std::span<const uint8_t>(current_.data.get(), current_.size);
  }
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<Chunk>& spare = lanes_[current_lane_]->spare;
  if (current_.data != nullptr && spare.size() < kMaxSpare) spare.push_back(std::move(current_));
  current_ = Chunk{};
  current_lane_ = lane.index;
  cv_.wait(lock, [&] { return !lane.ready.empty() || lane.done; });
  if (lane.ready.empty()) {
    if (!lane.error.ok()) return lane.error;
    return Status::Internal("weight stream read past its last weight");
  }
  current_ = std::move(lane.ready.front());
  lane.ready.pop_front();
  lane.queued_bytes -= std::max<size_t>(current_.size, 1);
  cv_.notify_all();
  if (current_.data == nullptr) ++consumed_read_;
  return std::span<const uint8_t>(current_.data.get(), current_.size);
}

}  // namespace wd
