// wd_fault_daemon: `weightdrop run` with faults injected by bundle name, for
// tests/integration/daemon_test.py only (built, never installed). It links
// the same libraries as weightdrop and sets DaemonTestHooks, which the
// shipped binary never does. A publish of a bundle whose name starts with
//   throw-     throws std::bad_alloc
//   crash-     writes through a null pointer (SIGSEGV, SEGV_MAPERR)
//   abort-     calls std::abort() (SIGABRT)
//   overflow-  recurses until the stack overflows (SIGSEGV on the guard page)
//   slow-      waits 3 s, then publishes (a publish certain to be running
//              when a test's SIGTERM arrives)
// on the worker thread; any other bundle publishes normally.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "daemon/daemon.h"
#include "tests/fault.h"

namespace {

int Recurse(int n) {
  volatile char frame[4096];
  frame[0] = static_cast<char>(n);
  if (n == 0) return frame[0];
  return Recurse(n - 1) + frame[0];  // not a tail call: every frame stays
}

// Runs on the publish job's worker thread.
void InjectFault(const std::string& bundle_path) {
  const std::string name = bundle_path.substr(bundle_path.rfind('/') + 1);
  if (name.starts_with("throw-")) throw std::bad_alloc();
  if (name.starts_with("crash-")) wd::test::StoreToReadOnlyPage();
  if (name.starts_with("abort-")) std::abort();
  if (name.starts_with("overflow-")) std::printf("%d\n", Recurse(1 << 30));
  if (name.starts_with("slow-")) std::this_thread::sleep_for(std::chrono::seconds(3));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::strcmp(argv[1], "run") != 0 || std::strcmp(argv[2], "--config") != 0) {
    std::fprintf(stderr, "usage: wd_fault_daemon run --config FILE\n");
    return 2;
  }
  wd::DaemonTestHooks hooks;
  hooks.before_publish = InjectFault;
  return wd::RunDaemon(argv[3], hooks);
}
