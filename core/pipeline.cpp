#include "core/pipeline.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <thread>
#include <vector>

#include "core/bundle_formats.h"
#include "core/digest_feed.h"
#include "core/model_json.h"
#include "core/options_json.h"
#include "core/sha256.h"
#include "core/shard_writer.h"
#include "core/weight_encoder.h"

namespace wd {
namespace {

// A ByteSink that forwards to another and reports progress.
class ProgressSink : public ByteSink {
 public:
  ProgressSink(ByteSink& inner, Progress& p, const ProgressFn& fn,
               const std::function<bool()>& cancelled)
      : inner_(inner), p_(p), fn_(fn), cancelled_(cancelled) {}
  Status Append(const uint8_t* data, size_t n) override {
    if (cancelled_ && cancelled_()) return Status::Incomplete("cancelled");
    WD_RETURN_IF_ERROR(inner_.Append(data, n));
    p_.bytes_done += n;
    if (fn_) fn_(p_);
    return Status::Ok();
  }

 private:
  ByteSink& inner_;
  Progress& p_;
  const ProgressFn& fn_;
  const std::function<bool()>& cancelled_;
};

// One file of a bundle digest: its name, a NUL, its size as 8 bytes
// little-endian, then its bytes (docs/formats.md, "Bundle digest").
Status HashNamedFile(const std::string& name, const std::string& path, Sha256& h) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return ErrnoStatus("cannot stat " + path, ec.value());
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(size >> (8 * i));
  h.Update(name.c_str(), name.size() + 1);  // with the NUL
  h.Update(le, sizeof le);
  return HashFileInto(path, h).status();
}

Result<std::optional<std::string>> ReadBundleModelJson(const Bundle& bundle) {
  if (!bundle.model_json()) return std::optional<std::string>();
  WD_ASSIGN_OR_RETURN(std::string text, ReadModelJson(*bundle.model_json()));
  return std::optional<std::string>(std::move(text));
}

// BundleDigest on a thread of its own; joined by Wait() or the destructor.
class BundleDigestTask {
 public:
  explicit BundleDigestTask(const Bundle& b)
      : thread_([this, &b] {
          Result<std::string> d = BundleDigest(b);
          if (d.ok()) {
            hex_ = *d;
          } else {
            status_ = d.status();
          }
          done_.store(true, std::memory_order_release);
        }) {}
  // True once the digest is known and equals `sha256`. Any thread.
  bool Matches(const std::string& sha256) const {
    return done_.load(std::memory_order_acquire) && status_.ok() && hex_ == sha256;
  }
  Result<std::string> Wait() {
    if (thread_.joinable()) thread_.join();
    if (!status_.ok()) return status_;
    return hex_;
  }

 private:
  std::string hex_;
  Status status_;
  std::atomic<bool> done_{false};
  std::jthread thread_;  // last: starts after the members it writes exist
};

// The bundle digest, hashed now, when the current version may come from
// this very bundle (same settings digest and fingerprint): the publisher can
// then say "unchanged" before anything is staged or encoded. "" otherwise.
Result<std::string> DigestIfMaybeCurrent(const Bundle& bundle, VersionStore& store,
                                         const PublishRequest& req) {
  const auto current = store.CurrentSource(req.model);
  if (!current || current->config_digest != req.config_digest || current->fingerprint.empty() ||
      current->fingerprint != req.source_fingerprint) {
    return std::string();
  }
  Result<std::string> sha = BundleDigest(bundle);
  if (!sha.ok()) return OnBundleSide(sha.status());
  return sha;
}

}  // namespace

std::vector<WeightRead> PlanReads(const Plan& plan) {
  std::vector<WeightRead> reads;
  for (const auto& g : plan.groups) {
    for (const PlannedWeight& pw : g.weights) AppendReads(pw, reads);
  }
  return reads;
}

Result<StagedContent> WriteShards(const Bundle& bundle, const Plan& plan, StagingArea& area,
                                  const ProgressFn& progress,
                                  const std::function<bool()>& cancelled, WeightStream* stream) {
  StagedContent out;
  Progress p;
  for (const auto& g : plan.groups) {
    p.bytes_total += g.total_bytes;
    p.weights_total += g.weights.size();
  }
  // Every weight's source, read (inflated, CRC-checked) ahead on threads of
  // their own while this one converts, writes and hashes.
  std::unique_ptr<WeightStream> own;
  if (stream == nullptr) {
    own = std::make_unique<WeightStream>(bundle, PlanReads(plan), /*threaded=*/true);
    stream = own.get();
  }
  for (const auto& g : plan.groups) {
    ManifestGroup mg;
    ShardWriter writer(area, g);
    ProgressSink sink(writer, p, progress, cancelled);
    for (const PlannedWeight& pw : g.weights) {
      const WeightEntry& w = bundle.weights()[pw.entry];
      WD_ASSIGN_OR_RETURN(auto quant, EncodeWeight(bundle, pw, sink, nullptr, stream));
      mg.weights.push_back(
          {.name = w.name, .shape = w.shape, .dtype = OutDtypeName(pw.out), .quantization = quant});
      // Bytes are reported as they are written; a weight counts as done once
      // all of its bytes are, so the last report is every weight and byte.
      ++p.weights_done;
      if (progress) progress(p);
    }
    WD_ASSIGN_OR_RETURN(auto shards, writer.Finish());
    for (auto& s : shards) {
      mg.paths.push_back(s.name);
      out.shards.push_back(std::move(s));
    }
    out.manifest.push_back(std::move(mg));
  }
  return out;
}

namespace {

// One file the bundle digest covers: its name there ("" for a .npz bundle,
// which is digested as its bytes alone) and its path.
struct DigestFile {
  std::string name;
  std::string path;
};

// The files of the bundle digest, in digest order (docs/formats.md).
Result<std::vector<DigestFile>> DigestFiles(const Bundle& bundle) {
  const std::string& path = bundle.path();
  const BundleFormat* format = bundle.file_format();
  if (format != nullptr && format->named_by_file) {
    // The file's name is its weight's name: hash it as a folder of one file.
    return std::vector<DigestFile>{{path.substr(path.find_last_of('/') + 1), path}};
  }
  if (!bundle.is_directory()) return std::vector<DigestFile>{{"", path}};
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (IsIgnoredName(name)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      files.push_back(fs::relative(it->path(), path, ec).generic_string());
    }
  }
  if (ec) return ErrnoStatus("cannot list " + path, ec.value());
  std::sort(files.begin(), files.end());
  std::vector<DigestFile> out;
  for (auto& rel : files) out.push_back({rel, path + "/" + rel});
  return out;
}

// What the bundle's files looked like before any of it was read: each
// file's digest name, size, modification time and identity.
struct FileState {
  std::string name;
  std::string path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  dev_t dev = 0;
  ino_t ino = 0;
};

Result<std::vector<FileState>> SnapshotFiles(const Bundle& bundle) {
  WD_ASSIGN_OR_RETURN(std::vector<DigestFile> files, DigestFiles(bundle));
  std::vector<FileState> out;
  for (DigestFile& f : files) {
    struct stat st {};
    if (lstat(f.path.c_str(), &st) != 0) {
      if (errno == ENOENT) return Status::Incomplete(f.path + ": vanished while it was published");
      return ErrnoStatus("cannot stat " + f.path, errno);
    }
    out.push_back({std::move(f.name), std::move(f.path), static_cast<uint64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                   st.st_dev, st.st_ino});
  }
  return out;
}

// kIncomplete when a file of the bundle changed between `before` and now
// (appended to, rewritten, replaced, added or removed): what was converted
// and what was hashed may then be different bytes, so nothing is published.
Status CheckUnchanged(const Bundle& bundle, const std::vector<FileState>& before) {
  WD_ASSIGN_OR_RETURN(std::vector<FileState> now, SnapshotFiles(bundle));
  const std::string retry = ": nothing was published from it; publish it once it is complete";
  for (size_t i = 0; i < std::max(before.size(), now.size()); ++i) {
    if (i >= before.size() || i >= now.size() || before[i].name != now[i].name) {
      const FileState& f = i < now.size() ? now[i] : before[i];
      return Status::Incomplete(f.path + ": files were added to or removed from " + bundle.path() +
                                " while it was published" + retry);
    }
    const FileState& a = before[i];
    const FileState& b = now[i];
    if (a.size != b.size) {
      return Status::Incomplete(b.path + ": changed size while it was published (" +
                                std::to_string(a.size) + " bytes, then " + std::to_string(b.size) +
                                ")" + retry);
    }
    if (a.mtime_ns != b.mtime_ns || a.dev != b.dev || a.ino != b.ino) {
      return Status::Incomplete(b.path + ": was modified or replaced while it was published" +
                                retry);
    }
  }
  return Status::Ok();
}

// A feed for the bundle digest from the reader's own reads (FileDigestFeed),
// when that reads the file once in order: a one-file bundle whose weights'
// first passes all read raw bytes of the file (none inflated, none
// transposed in memory) at increasing offsets. Null otherwise, or when the
// file cannot be opened (the digest's own thread then reports why).
std::unique_ptr<FileDigestFeed> DigestFeedFor(const Bundle& bundle,
                                              const std::vector<WeightRead>& reads) {
  if (bundle.is_directory()) return nullptr;
  uint64_t at = 0;
  for (const WeightRead& r : reads) {
    if (r.second_pass) continue;
    const WeightEntry& w = bundle.weights()[r.entry];
    const std::optional<uint64_t> raw = bundle.RawDataOffset(w);
    if (!raw || *raw < at || (w.fortran_order && w.shape.size() >= 2)) return nullptr;
    at = *raw + w.data_bytes;
  }
  Result<std::vector<DigestFile>> files = DigestFiles(bundle);
  if (!files.ok() || files->size() != 1) return nullptr;
  Result<std::unique_ptr<FileDigestFeed>> feed =
      FileDigestFeed::Open(files->front().path, files->front().name);
  return feed.ok() ? std::move(*feed) : nullptr;
}

// `n` bytes of `fd` from `offset` into `h`.
Status HashRange(int fd, uint64_t offset, uint64_t n, const std::string& path, Sha256& h) {
  std::vector<uint8_t> buf(static_cast<size_t>(n));
  for (size_t done = 0; done < buf.size();) {
    const ssize_t got =
        pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ErrnoStatus("cannot read " + path, errno);
    if (got == 0) return Status::Incomplete(path + ": shrank while it was read");
    done += static_cast<size_t>(got);
  }
  h.Update(buf.data(), buf.size());
  return Status::Ok();
}

// One file of the fingerprint: its digest name, a NUL, its size as 8 bytes
// little-endian, its first 4 KiB and its last 4 KiB (or what its format
// asks: 64 KiB for a .npz), never a byte twice (docs/formats.md, "Bundle
// fingerprint").
Status FingerprintFile(const DigestFile& f, Sha256& h) {
  constexpr uint64_t kHead = 4096;
  const BundleFormat* format = BundleFormatOf(f.path);
  const uint64_t tail = format != nullptr ? format->fingerprint_tail : 4096;
  const int fd = open(f.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot read " + f.path, errno);
  struct stat st {};
  Status status = fstat(fd, &st) == 0 ? Status::Ok() : ErrnoStatus("cannot stat " + f.path, errno);
  if (status.ok()) {
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(size >> (8 * i));
    h.Update(f.name.c_str(), f.name.size() + 1);  // with the NUL
    h.Update(le, sizeof le);
    const uint64_t head = std::min(kHead, size);
    const uint64_t back = std::min(tail, size - head);
    status = HashRange(fd, 0, head, f.path, h);
    if (status.ok()) status = HashRange(fd, size - back, back, f.path, h);
  }
  close(fd);
  return status;
}

}  // namespace

Result<std::string> BundleDigest(const Bundle& bundle) {
  WD_ASSIGN_OR_RETURN(std::vector<DigestFile> files, DigestFiles(bundle));
  Sha256 h;
  for (const DigestFile& f : files) {
    if (f.name.empty()) {
      WD_RETURN_IF_ERROR(HashFileInto(f.path, h).status());
    } else {
      WD_RETURN_IF_ERROR(HashNamedFile(f.name, f.path, h));
    }
  }
  return h.HexDigest();
}

Result<std::string> BundleFingerprint(const Bundle& bundle) {
  WD_ASSIGN_OR_RETURN(std::vector<DigestFile> files, DigestFiles(bundle));
  Sha256 h;
  for (const DigestFile& f : files) WD_RETURN_IF_ERROR(FingerprintFile(f, h));
  return h.HexDigest();
}

std::string DefaultModelName(const std::string& bundle_path) {
  std::filesystem::path p(bundle_path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing '/'
  return BundleStem(p.filename().string());
}

Result<BundlePublish> PublishBundle(const std::string& path, const PublishSettings& settings,
                                    VersionStore& store, const ProgressFn& progress) {
  WD_RETURN_IF_ERROR(ValidateModelName(settings.model));
  // Faults met reading the bundle are about it, not the serve side.
  auto bundle_or = Bundle::Open(path);
  if (!bundle_or.ok()) return OnBundleSide(bundle_or.status());
  std::unique_ptr<Bundle> bundle = std::move(bundle_or).value();
  // Compared with the files once the shards and the digest are done.
  Result<std::vector<FileState>> files_before = SnapshotFiles(*bundle);
  if (!files_before.ok()) return OnBundleSide(files_before.status());
  Result<Plan> plan_or = MakePlan(*bundle, settings.options);
  if (!plan_or.ok()) return OnBundleSide(plan_or.status());
  Plan plan = std::move(plan_or).value();
  auto model_json = ReadBundleModelJson(*bundle);
  if (!model_json.ok()) return OnBundleSide(model_json.status());
  if (settings.on_planned) settings.on_planned(plan);
  Result<std::string> fingerprint = BundleFingerprint(*bundle);
  if (!fingerprint.ok()) return OnBundleSide(fingerprint.status());
  PublishRequest req{
      .serve_root = "",  // the store's
      .model = settings.model,
      .keep_versions = settings.keep_versions,
      .source_path = settings.source_path.empty()
                         ? std::filesystem::absolute(path).lexically_normal().string()
                         : settings.source_path,
      .source_sha256 = "",  // hashed up front or alongside encoding, below
      .source_fingerprint = *fingerprint,
      .config_digest = Sha256Hex(CanonicalOptions(settings.options)),
      .settings = OptionsToJson(settings.options),
      .source_metadata = nullptr,
      .skip_if_unchanged = settings.skip_if_unchanged};
  for (const auto& [file, values] : bundle->Metadata()) req.source_metadata[file] = values;
  if (settings.skip_if_unchanged) {
    WD_ASSIGN_OR_RETURN(req.source_sha256, DigestIfMaybeCurrent(*bundle, store, req));
  }
  // Otherwise the bundle is hashed while the shards are encoded: fed by the
  // reader from its own reads when the bundle is one file read raw in file
  // order, else on a thread of its own (on two cores hashing the input then
  // costs little wall time; once that digest is known and equals the
  // current version's, encoding stops early).
  std::unique_ptr<FileDigestFeed> feed;  // outlives the stream that feeds it
  std::optional<BundleDigestTask> digest;
  std::optional<WeightStream> stream;
  if (req.source_sha256.empty()) {
    std::vector<WeightRead> reads = PlanReads(plan);
    feed = DigestFeedFor(*bundle, reads);
    if (!feed) digest.emplace(*bundle);
    // Reading starts now too, while the publisher sets up staging.
    stream.emplace(*bundle, std::move(reads), /*threaded=*/true, kReadAheadBytes, feed.get());
  }
  auto produce = [&](StagingArea& area) -> Result<StagedContent> {
    if (feed) {
      Result<StagedContent> staged = WriteShards(*bundle, plan, area, progress, nullptr, &*stream);
      if (!staged.ok()) return staged.status();
      Result<std::string> sha = feed->Finish();
      if (!sha.ok()) return OnBundleSide(sha.status());
      staged->source_sha256 = *sha;
      staged->model_json = *model_json;
      return staged;
    }
    if (!digest) {  // the digest is known and is not the current version's
      stream.emplace(*bundle, PlanReads(plan), /*threaded=*/true);
      WD_ASSIGN_OR_RETURN(StagedContent staged,
                          WriteShards(*bundle, plan, area, progress, nullptr, &*stream));
      staged.model_json = *model_json;
      return staged;
    }
    const auto current = store.CurrentSource(settings.model);
    auto same = [&] {
      return settings.skip_if_unchanged && current && current->config_digest == req.config_digest &&
             digest->Matches(current->sha256);
    };
    Result<StagedContent> staged = WriteShards(*bundle, plan, area, progress, same, &*stream);
    Result<std::string> sha_or = digest->Wait();
    if (!sha_or.ok()) return OnBundleSide(sha_or.status());
    const std::string sha = *sha_or;
    if (!staged.ok() && same()) {
      StagedContent c;
      c.source_sha256 = sha;
      c.cancelled = true;
      return c;
    }
    if (!staged.ok()) return staged.status();
    staged->source_sha256 = sha;
    staged->model_json = *model_json;
    return staged;
  };
  // Whatever produced it, content is published only if the bundle's files
  // are as they were before any of it was read.
  auto produce_unchanged = [&](StagingArea& area) -> Result<StagedContent> {
    Result<StagedContent> staged = produce(area);
    if (staged.ok() && !staged->cancelled) {
      WD_RETURN_IF_ERROR(OnBundleSide(CheckUnchanged(*bundle, *files_before)));
    }
    return staged;
  };
  WD_ASSIGN_OR_RETURN(PublishResult r, store.Publish(req, produce_unchanged));
  // Reported whatever the outcome, "unchanged" included.
  std::vector<std::string> unused;
  for (const UnusedPattern& u : plan.unused_patterns) unused.push_back(UnusedPatternMessage(u));
  r.warnings.insert(r.warnings.begin(), unused.begin(), unused.end());
  return BundlePublish{.result = std::move(r), .plan = std::move(plan)};
}

}  // namespace wd
