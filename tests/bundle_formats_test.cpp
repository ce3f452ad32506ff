#include "core/bundle_formats.h"

#include <doctest/doctest.h>

namespace wd {
namespace {

TEST_CASE("bundle files are told by their exact lower-case extension") {
  REQUIRE(BundleFormatOf("m.npz") != nullptr);
  CHECK(BundleFormatOf("m.npz")->name == "npz");
  CHECK(BundleFormatOf("dir/m.npy")->name == "npy");
  CHECK(BundleFormatOf("model-00001-of-00002.safetensors")->name == "safetensors");
  CHECK(BundleFormatOf("M.NPZ") == nullptr);
  CHECK(BundleFormatOf("m.npz.part") == nullptr);
  CHECK(BundleFormatOf("model.json") == nullptr);
  CHECK(BundleFormatOf("model.safetensors.index.json") == nullptr);
  CHECK(IndexFormatOf("model.safetensors.index.json")->name == "safetensors");
  CHECK(IndexFormatOf("model.json") == nullptr);
  CHECK(IsBundleFileName(".npz"));  // a hidden name: IsIgnoredName skips it first
  CHECK_FALSE(IsBundleFileName("m.npzx"));
}

TEST_CASE("an upper-case bundle extension is recognised for the message only") {
  CHECK(HasBundleExtensionInOtherCase("UP.NPZ"));
  CHECK(HasBundleExtensionInOtherCase("w.Npy"));
  CHECK(HasBundleExtensionInOtherCase("m.SafeTensors"));
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
  CHECK(BundleStem("model.safetensors") == "model");
}

TEST_CASE("messages list every format") {
  CHECK(BundleFileKinds() == "a .npz, .npy or .safetensors file");
}

}  // namespace
}  // namespace wd
