// Bundle: the weights of one dropped input (docs/formats.md, "Bundle"): a
// file of one of the input formats (core/bundle_formats.h) or a folder of
// them (recursively), with names, order, duplicate detection,
// hidden/temporary-name skipping, and symlinks never followed. Each file is
// indexed by the reader of its format (core/source_file.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/byte_source.h"
#include "core/source_file.h"
#include "core/status.h"

namespace wd {

struct BundleFormat;

class Bundle {
 public:
  // Opens and indexes the bundle at `path` (file or folder). Reads every
  // header; reads no weight data. Errors are kBundle naming file and problem.
  static Result<std::unique_ptr<Bundle>> Open(const std::string& path);
  ~Bundle();
  Bundle(const Bundle&) = delete;
  Bundle& operator=(const Bundle&) = delete;

  const std::string& path() const { return path_; }
  bool is_directory() const { return is_dir_; }
  // Weights in bundle order (docs/formats.md, "Bundle").
  const std::vector<WeightEntry>& weights() const { return weights_; }
  // Path of model.json at the root of a folder bundle, if present.
  const std::optional<std::string>& model_json() const { return model_json_; }
  // The format of a bundle that is one file; nullptr for a folder.
  const BundleFormat* file_format() const { return file_format_; }
  // Metadata the files carry (safetensors' __metadata__), by the file's
  // path in the bundle (its name for a file bundle); files without any are
  // left out.
  std::map<std::string, std::map<std::string, std::string>> Metadata() const;

  // Opens a fresh stream over the weight's data bytes: exactly w.data_bytes
  // bytes. May be called any number of times (one pass for min/max, one to
  // encode). Not thread-safe: Reopen for another thread.
  // `check_crc` false: the data was already read once, CRC checked (a
  // second pass of affine quantization), so a stored member skips it.
  Result<std::unique_ptr<ByteSource>> OpenData(const WeightEntry& w, bool check_crc = true) const;
  // An independent copy for reading on another thread (OpenData on one
  // Bundle is not thread-safe): same weights, files reopened.
  Result<std::unique_ptr<Bundle>> Reopen() const;
  // True when the weight's bytes are deflated (reading them twice costs two
  // inflations).
  bool IsCompressed(const WeightEntry& w) const;
  // Where the weight's bytes sit, unchanged, in its file (SourceFile).
  std::optional<uint64_t> RawDataOffset(const WeightEntry& w) const;

 private:
  Bundle() = default;
  Status AddFile(int fd, const BundleFormat& format, const SourceLocation& loc);
  Status CheckIndexes(const std::vector<std::string>& indexes);
  std::string path_;
  bool is_dir_ = false;
  int root_fd_ = -1;  // the folder of a folder bundle; -1 for a file bundle
  const BundleFormat* file_format_ = nullptr;
  std::vector<std::unique_ptr<SourceFile>> files_;
  std::vector<std::string> file_names_;  // each file's path in the bundle, as files_
  std::vector<WeightEntry> weights_;
  std::optional<std::string> model_json_;
};

// True for names a bundle ignores: leading '.', or ending .tmp .part .partial
// .crdownload or '~'.
bool IsIgnoredName(const std::string& name);

}  // namespace wd
