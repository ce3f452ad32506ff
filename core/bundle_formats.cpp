#include "core/bundle_formats.h"

#include <array>
#include <cctype>

namespace wd {
namespace {

struct Extension {
  std::string_view suffix;
  BundleFormat format;
};
constexpr std::array<Extension, 2> kExtensions = {
    {{".npz", BundleFormat::kNpz}, {".npy", BundleFormat::kNpy}}};

}  // namespace

BundleFormat BundleFormatOf(std::string_view file_name) {
  for (const Extension& e : kExtensions) {
    if (file_name.ends_with(e.suffix)) return e.format;
  }
  return BundleFormat::kNone;
}

bool HasBundleExtensionInOtherCase(std::string_view file_name) {
  std::string lower(file_name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return !IsBundleFileName(file_name) && IsBundleFileName(lower);
}

std::string BundleStem(std::string_view file_name) {
  std::string stem(file_name);
  for (const Extension& e : kExtensions) {
    if (stem.size() > e.suffix.size() && stem.ends_with(e.suffix)) {
      stem.resize(stem.size() - e.suffix.size());
    }
  }
  return stem;
}

}  // namespace wd
