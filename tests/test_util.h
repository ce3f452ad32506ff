// Helpers shared by the unit tests: scratch folders, file I/O, hex.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
// tests/<rel> in the source tree.
std::string SourcePath(const std::string& rel);

}  // namespace wd::test
