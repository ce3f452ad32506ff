// Manifest: the tfjs weights manifest (docs/formats.md) as data, written exactly as
// the reference writer's json.dump does (", " and ": " separators, Python
// float repr), and parsed back for verify and pointer rewrites.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/pipeline_options.h"
#include "core/status.h"

namespace wd {

struct ManifestQuantization {
  QuantDtype dtype = QuantDtype::kNone;
  double min = 0;    // affine only
  double scale = 1;  // affine only
};

struct ManifestWeight {
  std::string name;
  std::vector<uint64_t> shape;
  std::string dtype;  // "float32", "int32", "bool", "string", "complex64"
  std::optional<ManifestQuantization> quantization;
};

struct ManifestGroup {
  std::vector<std::string> paths;
  std::vector<ManifestWeight> weights;
};

using Manifest = std::vector<ManifestGroup>;

// Python json.dumps of the manifest (key order name, shape, dtype,
// quantization{dtype, min, scale, original_dtype}).
std::string ManifestToJson(const Manifest& m);

// Parses a weights manifest; errors name `where` and the offending entry.
Result<Manifest> ParseManifest(const std::string& text, const std::string& where);

// The same manifest with every path prefixed ("7/" + path).
Manifest WithPathPrefix(const Manifest& m, const std::string& prefix);

// Python's repr(float): shortest round-trip digits, ".0" on integers,
// exponent form below 1e-4 and from 1e16 ("1e-05", "1.5e+16"), "-0.0".
std::string PythonFloatRepr(double v);

// Python json.dumps of a string (ASCII-only output with \uXXXX escapes).
std::string PythonJsonString(const std::string& utf8);

}  // namespace wd
