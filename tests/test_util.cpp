#include "tests/test_util.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace wd::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wd-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name) {
  const char* old = std::getenv(name);
  had_ = old != nullptr;
  if (had_) old_ = old;
  if (value == nullptr) {
    unsetenv(name);
  } else {
    setenv(name, value, 1);
  }
}

ScopedEnv::~ScopedEnv() {
  if (had_) {
    setenv(name_.c_str(), old_.c_str(), 1);
  } else {
    unsetenv(name_.c_str());
  }
}

std::string SourcePath(const std::string& rel) {
  return std::string(WD_TEST_SOURCE_DIR) + "/" + rel;
}

std::string Npy(const std::string& descr, const std::string& shape, const std::string& data,
                bool fortran_order) {
  std::string text = "{'descr': '" + descr +
                     "', 'fortran_order': " + (fortran_order ? "True" : "False") +
                     ", 'shape': " + shape + ", }";
  const size_t total = (10 + text.size() + 1 + 63) / 64 * 64;
  text += std::string(total - 10 - text.size() - 1, ' ') + "\n";
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(text.size() & 0xff);
  out += static_cast<char>(text.size() >> 8);
  return out + text + data;
}

std::string Floats(std::initializer_list<float> v) {
  std::string out(v.size() * 4, '\0');
  std::memcpy(out.data(), std::data(v), out.size());
  return out;
}

std::string Int32s(std::initializer_list<int32_t> v) {
  std::string out(v.size() * 4, '\0');
  std::memcpy(out.data(), std::data(v), out.size());
  return out;
}

namespace {
std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}
}  // namespace

std::string DumpOptions(const PipelineOptions& o) {
  std::ostringstream s;
  s << "shard=" << o.shard_size;
  const Grouping& g = o.grouping;
  if (g.kind == Grouping::Kind::kSingle) s << " single";
  if (g.kind == Grouping::Kind::kByPrefix) s << " by_prefix=" << g.prefix_components;
  if (g.kind == Grouping::Kind::kPatterns) {
    s << " groups=";
    for (const GroupRule& rule : g.rules) s << "[" << rule.name << "|" << Join(rule.match) << "]";
  }
  if (g.unmatched_error) s << " unmatched=error";
  for (const auto& [dtype, patterns] : o.quantize.patterns) {
    s << " " << QuantDtypeName(dtype) << "=" << Join(patterns);
  }
  if (o.quantize.fallthrough != QuantDtype::kNone) {
    s << " " << QuantDtypeName(o.quantize.fallthrough) << "=true";
  }
  if (o.strict_patterns) s << " strict_patterns";
  return s.str();
}

}  // namespace wd::test
