// A real memory fault for the crash-guard tests: a store into a page mapped
// read-only, which the kernel reports as SIGSEGV. Not a store through a null
// pointer: UBSan (built with -fno-sanitize-recover) turns that into exit(1)
// before any signal is raised, so the guard would have nothing to record.
#pragma once

#include <sys/mman.h>

#include <cstdlib>

namespace wd::test {

inline void StoreToReadOnlyPage() {
  void* page = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) std::abort();
  *static_cast<volatile int*>(page) = 1;
}

}  // namespace wd::test
