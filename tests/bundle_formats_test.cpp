#include "core/bundle_formats.h"

#include <doctest/doctest.h>

namespace wd {
namespace {

TEST_CASE("bundle files are told by their exact lower-case extension") {
  CHECK(BundleFormatOf("m.npz") == BundleFormat::kNpz);
  CHECK(BundleFormatOf("dir/m.npy") == BundleFormat::kNpy);
  CHECK(BundleFormatOf("M.NPZ") == BundleFormat::kNone);
  CHECK(BundleFormatOf("m.npz.part") == BundleFormat::kNone);
  CHECK(BundleFormatOf("model.json") == BundleFormat::kNone);
  CHECK(IsBundleFileName(".npz"));  // a hidden name: IsIgnoredName skips it first
  CHECK_FALSE(IsBundleFileName("m.npzx"));
}

TEST_CASE("an upper-case bundle extension is recognised for the message only") {
  CHECK(HasBundleExtensionInOtherCase("UP.NPZ"));
  CHECK(HasBundleExtensionInOtherCase("w.Npy"));
  CHECK_FALSE(HasBundleExtensionInOtherCase("m.npz"));
  CHECK_FALSE(HasBundleExtensionInOtherCase("notes.txt"));
}

TEST_CASE("the stem drops the bundle extension, never the whole name") {
  CHECK(BundleStem("mlp.npz") == "mlp");
  CHECK(BundleStem("w.npy") == "w");
  CHECK(BundleStem("folder") == "folder");
  CHECK(BundleStem(".npz") == ".npz");
  CHECK(BundleStem("m.tar") == "m.tar");
  CHECK(BundleStem("m.npy.npz") == "m");  // .npz, then .npy: as weightdrop always named it
  CHECK(BundleStem("m.npz.npy") == "m.npz");
}

}  // namespace
}  // namespace wd
