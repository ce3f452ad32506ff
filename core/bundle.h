// Bundle: the weights of one dropped input (docs/formats.md): a .npz, a single .npy,
// or a folder of them (recursively), with names, order, duplicate detection,
// hidden/temporary-name skipping, and symlinks never followed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/byte_source.h"
#include "core/npy_header.h"
#include "core/status.h"

namespace wd {

class NpzArchive;

struct WeightEntry {
  std::string name;   // weight name (docs/formats.md, "Bundle"), e.g. "dense/kernel"
  std::string where;  // for messages: "bundle/x.npz: member 'a.npy'" or "bundle/a.npy"
  NpyHeader header;
  // Locator: either a plain .npy file (archive < 0) or a member of archive.
  std::string rel_path;  // path of the .npy/.npz relative to the bundle root ("" for a file bundle)
  int archive = -1;      // index into the bundle's open archives
  uint64_t member_index = 0;
};

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

  // Opens a fresh stream over the weight's data bytes (after the header):
  // exactly header.data_bytes bytes. May be called any number of times (one
  // pass for min/max, one to encode). Not thread-safe per archive.
  // `check_crc` false: the data was already read once, CRC checked (a
  // second pass of affine quantization), so a stored member skips it.
  Result<std::unique_ptr<ByteSource>> OpenData(const WeightEntry& w, bool check_crc = true) const;
  // An independent copy for reading on another thread (OpenData on one
  // Bundle is not thread-safe): same weights, archives reopened.
  Result<std::unique_ptr<Bundle>> Reopen() const;
  // True when the weight's bytes are deflated (reading them twice costs two
  // inflations).
  bool IsCompressed(const WeightEntry& w) const;

 private:
  Bundle() = default;
  std::string path_;
  bool is_dir_ = false;
  int root_fd_ = -1;  // the folder (folder bundle) or the file (file bundle)
  std::vector<std::unique_ptr<NpzArchive>> archives_;
  std::vector<WeightEntry> weights_;
  std::optional<std::string> model_json_;
};

// True for names a bundle ignores: leading '.', or ending .tmp .part .partial
// .crdownload or '~'.
bool IsIgnoredName(const std::string& name);

}  // namespace wd
