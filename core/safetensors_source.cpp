// The safetensors reader; the rules it checks are in docs/formats.md
// ("safetensors").
#include "core/safetensors_source.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <set>
#include <unordered_map>

namespace wd {
namespace {

struct SafetensorsDtype {
  std::string_view name;
  SourceKind kind;
  uint32_t item_size;
};

// What each dtype is published as is in docs/formats.md ("Dtypes").
constexpr std::array<SafetensorsDtype, 16> kDtypes = {{
    {"F64", SourceKind::kFloat, 8},
    {"F32", SourceKind::kFloat, 4},
    {"F16", SourceKind::kFloat, 2},
    {"BF16", SourceKind::kBFloat16, 2},
    {"F8_E4M3", SourceKind::kFloat8E4M3, 1},
    {"F8_E5M2", SourceKind::kFloat8E5M2, 1},
    {"I64", SourceKind::kSignedInt, 8},
    {"I32", SourceKind::kSignedInt, 4},
    {"I16", SourceKind::kSignedInt, 2},
    {"I8", SourceKind::kSignedInt, 1},
    {"U64", SourceKind::kUnsignedInt, 8},
    {"U32", SourceKind::kUnsignedInt, 4},
    {"U16", SourceKind::kUnsignedInt, 2},
    {"U8", SourceKind::kUnsignedInt, 1},
    {"BOOL", SourceKind::kBool, 1},
    {"C64", SourceKind::kComplex, 8},  // two little-endian float32: tfjs' complex64
}};

// As for .npy headers: no real tensor has more dimensions, and a bound keeps
// messages that quote a shape short.
constexpr size_t kMaxRank = 64;

// Dtypes the format defines that have no exact float32 or int32 form here.
constexpr std::array<std::string_view, 4> kUnpublishable = {"F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"};

Result<NpyDtype> DtypeOf(const std::string& name, const std::string& where) {
  for (const SafetensorsDtype& d : kDtypes) {
    if (d.name == name) {
      NpyDtype out;
      out.descr = name;
      out.kind = d.kind;
      out.item_size = d.item_size;
      out.order = d.item_size == 1 ? ByteOrder::kNone : ByteOrder::kLittle;
      return out;
    }
  }
  for (std::string_view u : kUnpublishable) {
    if (u == name) {
      return Status::Bundle(where + ": dtype " + name +
                            " cannot be published: tfjs has no such dtype and weightdrop "
                            "converts only where the result is exact; cast it to F32, F16 or "
                            "BF16 before saving");
    }
  }
  return Status::Bundle(where + ": unknown safetensors dtype '" + EscapeName(name) + "'");
}

// Reads exactly n bytes at `offset`.
Status PreadExact(int fd, uint8_t* buf, size_t n, uint64_t offset, const std::string& where) {
  for (size_t done = 0; done < n;) {
    ssize_t got = pread(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ErrnoStatus("read " + where, errno);
    if (got == 0) return Status::Incomplete(where + ": shrank while it was read");
    done += static_cast<size_t>(got);
  }
  return Status::Ok();
}

struct Tensor {
  std::string name;
  NpyDtype dtype;
  std::vector<uint64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
  WeightEntry weight;  // what the bundle gets
};

std::string TensorWhere(const std::string& file, const std::string& name) {
  return file + ": tensor '" + EscapeName(name) + "'";
}

Result<uint64_t> Unsigned(const nlohmann::json& v, const std::string& where, const char* what) {
  if (!v.is_number_unsigned()) {
    return Status::Bundle(where + ": " + what + " holds " + v.dump() +
                          ", not a non-negative integer");
  }
  return v.get<uint64_t>();
}

Result<Tensor> ParseTensor(const std::string& name, const nlohmann::json& v,
                           const std::string& file) {
  const std::string where = TensorWhere(file, name);
  if (!v.is_object()) return Status::Bundle(where + ": is not an object");
  for (const auto& [key, _] : v.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return Status::Bundle(where + ": unknown key '" + EscapeName(key) +
                            "' (a tensor has dtype, shape and data_offsets)");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(key)) return Status::Bundle(where + ": has no " + key);
  }
  Tensor t;
  t.name = name;
  if (!v["dtype"].is_string()) return Status::Bundle(where + ": dtype is not a string");
  WD_ASSIGN_OR_RETURN(t.dtype, DtypeOf(v["dtype"].get<std::string>(), where));
  if (!v["shape"].is_array()) return Status::Bundle(where + ": shape is not an array");
  if (v["shape"].size() > kMaxRank) {
    return Status::Bundle(where + ": shape has " + std::to_string(v["shape"].size()) +
                          " dimensions, more than " + std::to_string(kMaxRank));
  }
  for (const nlohmann::json& d : v["shape"]) {
    WD_ASSIGN_OR_RETURN(uint64_t dim, Unsigned(d, where, "shape"));
    t.shape.push_back(dim);
  }
  const nlohmann::json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2) {
    return Status::Bundle(where + ": data_offsets is not [begin, end]");
  }
  WD_ASSIGN_OR_RETURN(t.begin, Unsigned(off[0], where, "data_offsets"));
  WD_ASSIGN_OR_RETURN(t.end, Unsigned(off[1], where, "data_offsets"));
  if (t.end < t.begin) {
    return Status::Bundle(where + ": data_offsets [" + std::to_string(t.begin) + ", " +
                          std::to_string(t.end) + "] end before they begin");
  }
  return t;
}

// The tensors tile the data buffer: in offset order, each begins where the
// one before ended, from 0 to `buffer` (the format forbids holes and
// overlaps). Sorts `tensors` into offset order.
Status CheckTiling(std::vector<Tensor>& tensors, uint64_t buffer, const std::string& file) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const Tensor& a, const Tensor& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  const Tensor* prev = nullptr;
  for (const Tensor& t : tensors) {
    if (t.begin < at) {
      return Status::Bundle(TensorWhere(file, t.name) + ": data_offsets [" +
                            std::to_string(t.begin) + ", " + std::to_string(t.end) +
                            "] overlap tensor '" + EscapeName(prev->name) + "' [" +
                            std::to_string(prev->begin) + ", " + std::to_string(prev->end) + "]");
    }
    if (t.begin > at) {
      return Status::Bundle(file + ": bytes [" + std::to_string(at) + ", " +
                            std::to_string(t.begin) +
                            ") of the data buffer belong to no tensor (a hole before tensor '" +
                            EscapeName(t.name) + "'; the format allows none)");
    }
    at = t.end;
    prev = &t;
  }
  if (at < buffer) {
    return Status::Bundle(file + ": " + std::to_string(buffer - at) +
                          " trailing bytes after the last tensor's data (bytes [" +
                          std::to_string(at) + ", " + std::to_string(buffer) +
                          ") of the data buffer belong to no tensor)");
  }
  if (at > buffer) {
    return Status::Incomplete(
        file + ": truncated: its tensors need " + std::to_string(at) +
        " bytes of data but the file holds " + std::to_string(buffer) +
        (prev ? " (tensor '" + EscapeName(prev->name) + "' ends past it)" : std::string()));
  }
  return Status::Ok();
}

class SafetensorsSource : public SourceFile {
 public:
  SafetensorsSource(std::unique_ptr<RegionFile> file, uint64_t size,
                    std::map<std::string, std::string> metadata)
      : file_(std::move(file)), size_(size), metadata_(std::move(metadata)) {}

  Result<std::unique_ptr<ByteSource>> OpenData(const WeightEntry& w, bool) const override {
    return file_->OpenRegion(size_, w.data_offset, w.data_bytes, w.where);
  }

  std::optional<uint64_t> RawDataOffset(const WeightEntry& w) const override {
    return w.data_offset;
  }

  Result<std::unique_ptr<SourceFile>> Reopen(int root_fd) const override {
    WD_ASSIGN_OR_RETURN(std::unique_ptr<RegionFile> copy, file_->Reopen(root_fd));
    return std::unique_ptr<SourceFile>(new SafetensorsSource(std::move(copy), size_, metadata_));
  }

  const std::map<std::string, std::string>& metadata() const override { return metadata_; }

 private:
  std::unique_ptr<RegionFile> file_;  // no descriptor held in a folder bundle
  uint64_t size_;
  std::map<std::string, std::string> metadata_;
};

Result<std::map<std::string, std::string>> ParseMetadata(const nlohmann::json& v,
                                                         const std::string& file) {
  if (!v.is_object()) return Status::Bundle(file + ": __metadata__ is not an object");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) {
      return Status::Bundle(file + ": __metadata__ '" + EscapeName(key) + "' is " + value.dump() +
                            ", not a string (the format allows only strings)");
    }
    out[key] = value.get<std::string>();
  }
  return out;
}

// Reads and parses a JSON file of at most `cap` bytes at `offset`.
Result<std::string> ReadText(int fd, uint64_t offset, uint64_t n, const std::string& where) {
  std::string text(static_cast<size_t>(n), '\0');
  WD_RETURN_IF_ERROR(
      PreadExact(fd, reinterpret_cast<uint8_t*>(text.data()), text.size(), offset, where));
  return text;
}

// SAX handler: no key twice in one object, nothing nested deeper than
// kMaxDepth. Stops at the first problem (`why`); syntax errors throw as
// nlohmann's parse would.
struct KeyChecker {
  static constexpr size_t kMaxDepth = 8;
  std::vector<std::set<std::string>> keys;  // per open object
  size_t depth = 0;
  std::string top_key;  // the top-level object's key being parsed
  std::string why;

  bool Open(bool object) {
    if (++depth > kMaxDepth) {
      why = "nested deeper than " + std::to_string(kMaxDepth);
      return false;
    }
    if (object) keys.emplace_back();
    return true;
  }
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(nlohmann::json::number_integer_t) { return true; }
  bool number_unsigned(nlohmann::json::number_unsigned_t) { return true; }
  bool number_float(nlohmann::json::number_float_t, const std::string&) { return true; }
  bool string(std::string&) { return true; }
  bool binary(nlohmann::json::binary_t&) { return true; }
  bool start_object(std::size_t) { return Open(true); }
  bool start_array(std::size_t) { return Open(false); }
  bool end_object() {
    keys.pop_back();
    --depth;
    return true;
  }
  bool end_array() {
    --depth;
    return true;
  }
  bool key(std::string& k) {
    if (!keys.back().insert(k).second) {
      why = (keys.size() > 1 ? "'" + EscapeName(top_key) + "': " : std::string()) + "the key '" +
            EscapeName(k) + "' appears twice in one object";
      return false;
    }
    if (keys.size() == 1) top_key = k;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::json::exception& e) { throw e; }
};

}  // namespace

Result<nlohmann::json> ParseStrictJson(const std::string& text, const std::string& where) {
  // A SAX pass checks keys and depth without building anything; only then
  // is the document built. (nlohmann's parse callback, the obvious tool,
  // rescans the parent object at every object end: quadratic in the
  // number of tensors.)
  KeyChecker checker;
  try {
    if (!nlohmann::json::sax_parse(text, &checker) && !checker.why.empty()) {
      return Status::Bundle(where + ": " + checker.why);
    }
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Status::Bundle(where + ": not valid JSON: " + e.what());
  }
}

Result<IndexedFile> OpenSafetensorsSource(int fd, const SourceLocation& loc) {
  FdCloser closer(fd);
  const std::string& file = loc.where;
  WD_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd, file));
  if (size < 8) {
    return Status::Incomplete(file + ": truncated: " + std::to_string(size) +
                              " bytes, shorter than the 8-byte header length");
  }
  uint8_t le[8];
  WD_RETURN_IF_ERROR(PreadExact(fd, le, sizeof le, 0, file));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | le[i];
  if (n > kMaxSafetensorsHeader) {
    return Status::Bundle(
        file + ": header length " + std::to_string(n) + " bytes is over weightdrop's limit of " +
        std::to_string(kMaxSafetensorsHeader) + " (or this is not a safetensors file)");
  }
  if (n < 2) return Status::Bundle(file + ": header length " + std::to_string(n) + " is too short");
  if (size - 8 < n) {
    return Status::Incomplete(file + ": truncated: the header needs " + std::to_string(n) +
                              " bytes, the file holds " + std::to_string(size - 8) +
                              " after its length");
  }
  WD_ASSIGN_OR_RETURN(std::string text, ReadText(fd, 8, n, file));
  if (text[0] != '{') return Status::Bundle(file + ": header does not start with '{'");
  // The format allows padding with spaces; JSON allows other whitespace,
  // which is refused so the padding rule stays exact.
  size_t last = text.find_last_not_of(' ');
  if (text[last] != '}') {
    return Status::Bundle(file + ": header (" + std::to_string(n) +
                          " bytes, as its first 8 bytes say) does not end in '}' followed only by "
                          "space padding: its JSON is cut short (is that length right?) or "
                          "followed by other bytes");
  }
  WD_ASSIGN_OR_RETURN(nlohmann::json header, ParseStrictJson(text, file + ": header"));
  if (!header.is_object()) return Status::Bundle(file + ": header is not a JSON object");

  std::map<std::string, std::string> metadata;
  std::vector<Tensor> tensors;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      WD_ASSIGN_OR_RETURN(metadata, ParseMetadata(value, file));
      continue;
    }
    WD_ASSIGN_OR_RETURN(Tensor t, ParseTensor(name, value, file));
    tensors.push_back(std::move(t));
  }
  header = nlohmann::json();  // the parsed document is the largest thing held
  text = std::string();
  const uint64_t data_start = 8 + n;
  // Sizes before tiling, so a wrong length is named as such, not as a hole.
  for (Tensor& t : tensors) {
    t.weight.name = loc.prefix + t.name;
    t.weight.where = TensorWhere(file, t.name);
    t.weight.dtype = t.dtype;
    WD_RETURN_IF_ERROR(SetShape(t.weight, t.shape));
    t.weight.data_offset = data_start + t.begin;
    if (t.end - t.begin != t.weight.data_bytes) {
      return Status::Bundle(t.weight.where + ": data_offsets [" + std::to_string(t.begin) + ", " +
                            std::to_string(t.end) + "] hold " + std::to_string(t.end - t.begin) +
                            " bytes but shape " + ShapeString(t.shape) + " of " + t.dtype.descr +
                            " needs " + std::to_string(t.weight.data_bytes));
    }
  }
  WD_RETURN_IF_ERROR(CheckTiling(tensors, size - data_start, file));
  IndexedFile out;
  for (Tensor& t : tensors) {  // offset order: the file's own order
    t.weight.item = out.weights.size();
    out.weights.push_back(std::move(t.weight));
  }
  out.file.reset(new SafetensorsSource(std::make_unique<RegionFile>(closer.release(), loc), size,
                                       std::move(metadata)));
  return out;
}

Status CheckSafetensorsIndex(int fd, const SourceLocation& index,
                             const std::vector<const WeightEntry*>& beside,
                             const std::vector<std::string>& files_beside) {
  const std::string& where = index.where;
  WD_ASSIGN_OR_RETURN(uint64_t size, FileSize(fd, where));
  if (size > kMaxSafetensorsIndex) {
    return Status::Bundle(where + ": " + std::to_string(size) + " bytes is over the limit of " +
                          std::to_string(kMaxSafetensorsIndex) + " for an index");
  }
  WD_ASSIGN_OR_RETURN(std::string text, ReadText(fd, 0, size, where));
  WD_ASSIGN_OR_RETURN(nlohmann::json j, ParseStrictJson(text, where));
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return Status::Bundle(where + ": has no weight_map object");
  }
  // Which file beside holds each weight, by the name the index uses.
  std::unordered_map<std::string, const WeightEntry*> held;
  for (const WeightEntry* w : beside) held.emplace(w->name.substr(index.prefix.size()), w);
  const std::set<std::string> files(files_beside.begin(), files_beside.end());
  auto file_of = [&](const WeightEntry& w) {
    return w.where.substr(0, w.where.find(": tensor '"));
  };
  std::set<std::string> listed;
  for (const auto& [tensor, value] : j["weight_map"].items()) {
    if (!value.is_string()) {
      return Status::Bundle(where + ": weight_map maps '" + EscapeName(tensor) + "' to " +
                            value.dump() + ", not a file name");
    }
    const std::string shard = value.get<std::string>();
    if (shard.find('/') != std::string::npos || !files.contains(shard)) {
      return Status::Bundle(where + ": weight_map puts tensor '" + EscapeName(tensor) + "' in " +
                            EscapeName(shard) + ", which is not a .safetensors file beside it");
    }
    auto it = held.find(tensor);
    if (it == held.end()) {
      return Status::Bundle(where + ": weight_map puts tensor '" + EscapeName(tensor) + "' in " +
                            shard + ", which does not hold it (nor does any file beside it)");
    }
    const std::string actual = file_of(*it->second);
    if (actual != index.where.substr(0, index.where.size() - index.file_name.size()) + shard) {
      return Status::Bundle(where + ": weight_map puts tensor '" + EscapeName(tensor) + "' in " +
                            shard + ", but it is in " + actual);
    }
    listed.insert(tensor);
  }
  for (const WeightEntry* w : beside) {  // in bundle order, for a stable message
    const std::string tensor = w->name.substr(index.prefix.size());
    if (!listed.contains(tensor)) {
      return Status::Bundle(file_of(*w) + ": holds tensor '" + EscapeName(tensor) + "', which " +
                            where + " does not list");
    }
  }
  return Status::Ok();
}

}  // namespace wd
