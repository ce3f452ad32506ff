// Which implementation the per-element kernels (float16 conversion, affine
// quantization) run: portable scalar code or AVX2+F16C, chosen at run time
// from the CPU, never from compile flags. Every path is bit-identical.
#pragma once

namespace wd {

enum class KernelPath { kScalar, kAvx2 };

// The path in effect: a live ScopedKernelPath's, else the one chosen on first
// use from the CPU and WEIGHTDROP_KERNELS (scalar|avx2|auto; unset, empty or
// anything else means auto). Never kAvx2 on a CPU without AVX2 and F16C.
// Thread-safe.
KernelPath ActiveKernelPath();

// What WEIGHTDROP_KERNELS asks for right now (read on every call; for tests
// and diagnostics), already capped by what the CPU supports.
KernelPath KernelPathFromEnvironment();

// True when the CPU (and OS) support AVX2 and F16C.
bool CpuHasAvx2F16c();

const char* KernelPathName(KernelPath path);  // "scalar" or "avx2"

// Test hook: forces `path` (capped by the CPU) for the whole process while
// alive, then restores the previous choice. Not for concurrent use by two
// threads that want different paths.
class ScopedKernelPath {
 public:
  explicit ScopedKernelPath(KernelPath path);
  ~ScopedKernelPath();
  ScopedKernelPath(const ScopedKernelPath&) = delete;
  ScopedKernelPath& operator=(const ScopedKernelPath&) = delete;

 private:
  int previous_;
};

}  // namespace wd
