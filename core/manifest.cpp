#include "core/manifest.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

namespace wd {

namespace {

bool IsAffine(QuantDtype d) { return d == QuantDtype::kUint8 || d == QuantDtype::kUint16; }

// json.dumps writes non-finite floats as NaN / Infinity (allow_nan=True).
std::string JsonNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return PythonFloatRepr(v);
}

void AppendHex4(std::string* out, unsigned v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", v & 0xffffu);
  *out += buf;
}

// Decodes one UTF-8 sequence at s[*i]; invalid bytes decode to U+FFFD.
uint32_t DecodeUtf8(std::string_view s, size_t* i) {
  const auto b0 = static_cast<unsigned char>(s[*i]);
  int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xe ? 3 : (b0 >> 3) == 0x1e ? 4 : 0;
  if (len == 0 || *i + static_cast<size_t>(len) > s.size()) {
    ++*i;
    return 0xfffd;
  }
  uint32_t cp = len == 1 ? b0 : b0 & (0x7f >> len);
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[*i + static_cast<size_t>(k)]);
    if ((b & 0xc0) != 0x80) {
      ++*i;
      return 0xfffd;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    ++*i;
    return 0xfffd;
  }
  *i += static_cast<size_t>(len);
  return cp;
}

}  // namespace

std::string PythonFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, in scientific form: "-1.2345e+02".
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  std::string out;
  if (sci.front() == '-') {
    out = "-";
    sci.remove_prefix(1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits(sci.substr(0, e_pos));
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  const int exp = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());
  const int n = static_cast<int>(digits.size());
  if (exp >= -4 && exp < 16) {  // repr's fixed-point range
    if (exp < 0) return out + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    if (n <= exp + 1)
      return out + digits + std::string(static_cast<size_t>(exp + 1 - n), '0') + ".0";
    return out + digits.substr(0, static_cast<size_t>(exp + 1)) + "." +
           digits.substr(static_cast<size_t>(exp + 1));
  }
  out += digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  char e[16];
  std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return out + e;
}

std::string PythonJsonString(const std::string& utf8) {
  std::string out = "\"";
  for (size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      ++i;
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            AppendHex4(&out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      continue;
    }
    const uint32_t cp = DecodeUtf8(utf8, &i);
    if (cp < 0x10000) {
      AppendHex4(&out, cp);
    } else {
      const uint32_t v = cp - 0x10000;
      AppendHex4(&out, 0xd800 + (v >> 10));
      AppendHex4(&out, 0xdc00 + (v & 0x3ff));
    }
  }
  return out + "\"";
}

namespace {

std::string QuantizationJson(const ManifestQuantization& q) {
  std::string out = "{\"dtype\": " + PythonJsonString(QuantDtypeName(q.dtype));
  if (IsAffine(q.dtype)) {
    out += ", \"min\": " + JsonNumber(q.min) + ", \"scale\": " + JsonNumber(q.scale);
  }
  return out + ", \"original_dtype\": \"float32\"}";
}

std::string WeightJson(const ManifestWeight& w) {
  std::string out = "{\"name\": " + PythonJsonString(w.name) + ", \"shape\": [";
  for (size_t i = 0; i < w.shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(w.shape[i]);
  }
  out += "], \"dtype\": " + PythonJsonString(w.dtype);
  if (w.quantization) out += ", \"quantization\": " + QuantizationJson(*w.quantization);
  return out + "}";
}

}  // namespace

std::string ManifestToJson(const Manifest& m) {
  std::string out = "[";
  for (size_t g = 0; g < m.size(); ++g) {
    if (g > 0) out += ", ";
    out += "{\"paths\": [";
    for (size_t i = 0; i < m[g].paths.size(); ++i) {
      if (i > 0) out += ", ";
      out += PythonJsonString(m[g].paths[i]);
    }
    out += "], \"weights\": [";
    for (size_t i = 0; i < m[g].weights.size(); ++i) {
      if (i > 0) out += ", ";
      out += WeightJson(m[g].weights[i]);
    }
    out += "]}";
  }
  return out + "]";
}

namespace {

using nlohmann::json;

// Structure errors carry "<where>: group G weight W ('name'): problem".
Status Bad(const std::string& ctx, const std::string& problem) {
  return Status::Bundle(ctx + ": " + problem);
}

Result<ManifestQuantization> ParseQuantization(const json& j, const std::string& ctx) {
  if (!j.is_object()) return Bad(ctx, "\"quantization\" must be an object");
  auto dt = j.find("dtype");
  if (dt == j.end() || !dt->is_string()) {
    return Bad(ctx, "\"quantization\" needs a string \"dtype\"");
  }
  ManifestQuantization q;
  const std::string name = dt->get<std::string>();
  for (QuantDtype d : {QuantDtype::kUint8, QuantDtype::kUint16, QuantDtype::kFloat16}) {
    if (name == QuantDtypeName(d)) q.dtype = d;
  }
  if (q.dtype == QuantDtype::kNone) {
    return Bad(ctx,
               "unknown quantization dtype '" + name + "' (expected uint8, uint16 or float16)");
  }
  if (IsAffine(q.dtype)) {
    auto mn = j.find("min");
    auto sc = j.find("scale");
    if (mn == j.end() || !mn->is_number() || sc == j.end() || !sc->is_number()) {
      return Bad(ctx, name + " quantization needs numeric \"min\" and \"scale\"");
    }
    q.min = mn->get<double>();
    q.scale = sc->get<double>();
  }
  return q;
}

Result<ManifestWeight> ParseWeight(const json& j, const std::string& ctx) {
  if (!j.is_object()) return Bad(ctx, "must be an object");
  ManifestWeight w;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string()) return Bad(ctx, "needs a string \"name\"");
  w.name = name->get<std::string>();
  const std::string wctx = ctx + " ('" + w.name + "')";
  auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array()) return Bad(wctx, "needs a list \"shape\"");
  for (const json& d : *shape) {
    if (!d.is_number_unsigned()) return Bad(wctx, "\"shape\" holds " + d.dump() + ", not a size");
    w.shape.push_back(d.get<uint64_t>());
  }
  auto dtype = j.find("dtype");
  if (dtype == j.end() || !dtype->is_string()) return Bad(wctx, "needs a string \"dtype\"");
  w.dtype = dtype->get<std::string>();
  static const char* const kDtypes[] = {"float32", "int32", "bool", "string", "complex64"};
  bool known = false;
  for (const char* d : kDtypes) known = known || w.dtype == d;
  if (!known) return Bad(wctx, "unknown dtype '" + w.dtype + "'");
  auto q = j.find("quantization");
  if (q != j.end() && !q->is_null()) {
    WD_ASSIGN_OR_RETURN(w.quantization, ParseQuantization(*q, wctx));
  }
  return w;
}

Result<ManifestGroup> ParseGroup(const json& j, const std::string& ctx) {
  if (!j.is_object()) return Bad(ctx, "must be an object");
  ManifestGroup g;
  auto paths = j.find("paths");
  if (paths == j.end() || !paths->is_array()) return Bad(ctx, "needs a list \"paths\"");
  for (const json& p : *paths) {
    if (!p.is_string()) return Bad(ctx, "\"paths\" holds " + p.dump() + ", not a string");
    g.paths.push_back(p.get<std::string>());
  }
  auto weights = j.find("weights");
  if (weights == j.end() || !weights->is_array()) return Bad(ctx, "needs a list \"weights\"");
  for (size_t i = 0; i < weights->size(); ++i) {
    WD_ASSIGN_OR_RETURN(ManifestWeight w,
                        ParseWeight((*weights)[i], ctx + " weight " + std::to_string(i + 1)));
    g.weights.push_back(std::move(w));
  }
  return g;
}

}  // namespace

Result<Manifest> ParseManifest(const std::string& text, const std::string& where) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return Status::Bundle(where + ": not valid JSON: " + e.what());
  }
  if (!doc.is_array()) return Status::Bundle(where + ": a weights manifest must be a JSON list");
  Manifest m;
  for (size_t g = 0; g < doc.size(); ++g) {
    WD_ASSIGN_OR_RETURN(ManifestGroup group,
                        ParseGroup(doc[g], where + ": group " + std::to_string(g + 1)));
    m.push_back(std::move(group));
  }
  return m;
}

Manifest WithPathPrefix(const Manifest& m, const std::string& prefix) {
  Manifest out = m;
  for (ManifestGroup& g : out) {
    for (std::string& p : g.paths) p = prefix + p;
  }
  return out;
}

}  // namespace wd
