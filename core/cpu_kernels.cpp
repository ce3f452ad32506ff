#include "core/cpu_kernels.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace wd {
namespace {

constexpr int kNotForced = -1;
std::atomic<int> forced_path{kNotForced};

KernelPath Capped(KernelPath path) {
  return path == KernelPath::kAvx2 && !CpuHasAvx2F16c() ? KernelPath::kScalar : path;
}

}  // namespace

bool CpuHasAvx2F16c() {
#if defined(__x86_64__) || defined(__i386__)
  // The runtime checks OS support for the YMM state (XGETBV) before it
  // reports AVX2. F16C comes from CPUID directly: clang's
  // __builtin_cpu_supports does not know "f16c".
  static const bool has = [] {
    __builtin_cpu_init();
    unsigned eax, ebx, ecx, edx;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    return __builtin_cpu_supports("avx2") && f16c;
  }();
  return has;
#else
  return false;
#endif
}

KernelPath KernelPathFromEnvironment() {
  const char* v = std::getenv("WEIGHTDROP_KERNELS");
  if (v != nullptr && std::strcmp(v, "scalar") == 0) return KernelPath::kScalar;
  // "avx2", "auto", unset or unknown: the best the CPU has.
  return Capped(KernelPath::kAvx2);
}

KernelPath ActiveKernelPath() {
  const int forced = forced_path.load(std::memory_order_relaxed);
  if (forced != kNotForced) return static_cast<KernelPath>(forced);
  static const KernelPath chosen = KernelPathFromEnvironment();
  return chosen;
}

const char* KernelPathName(KernelPath path) {
  return path == KernelPath::kAvx2 ? "avx2" : "scalar";
}

ScopedKernelPath::ScopedKernelPath(KernelPath path)
    : previous_(forced_path.exchange(static_cast<int>(Capped(path)))) {}

ScopedKernelPath::~ScopedKernelPath() { forced_path.store(previous_); }

}  // namespace wd
