// Helpers shared by the unit tests: scratch folders, file I/O, hex.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/pipeline_options.h"

namespace wd::test {

// A fresh folder under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& bytes);
std::string ReadFile(const std::string& path);
// Sets (or, with nullptr, unsets) an environment variable; restores it on
// destruction.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::string old_;
  bool had_ = false;
};

// tests/<rel> in the source tree.
std::string SourcePath(const std::string& rel);

// A version 1.0 .npy as NumPy writes it (header padded to 64 bytes), with
// `shape` a Python tuple literal such as "(2, 3)" and `data` the raw bytes.
std::string Npy(const std::string& descr, const std::string& shape, const std::string& data,
                bool fortran_order = false);

// Little-endian bytes of the given values.
std::string Floats(std::initializer_list<float> v);
std::string Int32s(std::initializer_list<int32_t> v);

// Every field of pipeline options, in the struct's own order: an oracle
// independent of CanonicalOptions (which normalises). Group rules print as
// [name|pattern,...].
std::string DumpOptions(const PipelineOptions& o);

}  // namespace wd::test
