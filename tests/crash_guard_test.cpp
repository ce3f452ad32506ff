// CrashGuard: the crash log's grammar, and real fatal signals in a forked
// child — which ones blame the bundle being worked on (faults, abort(), a
// stack overflow, a helper thread's fault) and which never do (kill from
// outside, a crash outside any bundle).
#include "daemon/crash_guard.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include "tests/fault.h"
#include "tests/test_util.h"

namespace wd {
namespace {

TEST_CASE("crash log: crashes count per path until a done record") {
  struct Row {
    const char* text;
    const char* path;
    int crashes;  // 0 = absent
    int signo;
  };
  const Row rows[] = {
      {"crash 11 /d/p/1/a.npz\n", "/d/p/1/a.npz", 1, 11},
      {"crash 11 /a\ncrash 6 /a\n", "/a", 2, 6},
      {"crash 11 /a\ndone /a\n", "/a", 0, 0},
      {"crash 11 /a\ndone /a\ncrash 7 /a\n", "/a", 1, 7},
      {"crash 11 /a\ncrash 11 /b\ndone /b\n", "/a", 1, 11},
      {"crash 11 /x\\ny\\\\z\n", "/x\ny\\z", 1, 11},                // escaped newline and backslash
      {"crash 11 /a\ncrash 11 /a", "/a", 1, 11},                    // a torn last line
      {"crash x1 /a\ncrash 11\ncrash  /a\nboom /a\n", "/a", 0, 0},  // malformed
      {"crash 11 /with space.npz\n", "/with space.npz", 1, 11},
  };
  for (const Row& r : rows) {
    CAPTURE(r.text);
    const CrashHistory h = ParseCrashLog(r.text);
    auto it = h.find(r.path);
    if (r.crashes == 0) {
      CHECK(it == h.end());
    } else {
      REQUIRE(it != h.end());
      CHECK(it->second.crashes == r.crashes);
      CHECK(it->second.last_signal == r.signo);
    }
  }
}

TEST_CASE("crash log: the rewritten text parses back to the same history") {
  CrashHistory h;
  h["/d/.weightdrop/processing/1/a.npz"] = {2, SIGSEGV};
  h["/d/new\nline"] = {1, SIGABRT};
  const CrashHistory back = ParseCrashLog(CrashLogText(h));
  REQUIRE(back.size() == 2);
  CHECK(back.at("/d/.weightdrop/processing/1/a.npz").crashes == 2);
  CHECK(back.at("/d/new\nline").last_signal == SIGABRT);
  CHECK(SignalName(SIGSEGV) == "SIGSEGV");
  CHECK(SignalName(SIGABRT) == "SIGABRT");
}

int Recurse(int n) {
  volatile char frame[4096];
  frame[0] = static_cast<char>(n);
  if (n == 0) return frame[0];
  return Recurse(n - 1) + frame[0];
}

// Forks a child that starts the guard on `state_dir` and runs `body`, which
// is expected to kill it; returns the crash log afterwards.
std::string CrashInChild(const std::string& state_dir, const std::function<void()>& body) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(s, SIG_DFL);  // not doctest's
    if (!StartCrashGuard(state_dir).ok()) _exit(3);
    body();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  // Killed by the signal (or, under ASan, reported by it and exited 1).
  CHECK((WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 1)));
  return test::ReadFile(state_dir + "/crashes");
}

TEST_CASE("a fault, abort() or stack overflow in a worker's scope records its bundle") {
  test::TempDir dir;
  const std::string bundle = dir / "a.npz";
  test::WriteFile(bundle, "x");  // the guard forgets bundles that no longer exist
  struct Row {
    const char* what;
    std::function<void()> crash;
    int signo;
  };
  const Row rows[] = {
      {"store to a read-only page", [] { test::StoreToReadOnlyPage(); }, SIGSEGV},
      {"abort", [] { std::abort(); }, SIGABRT},
      {"stack overflow", [] { CHECK(Recurse(1 << 30) == 0); }, SIGSEGV},
  };
  for (const Row& r : rows) {
    CAPTURE(r.what);
    const std::string log = CrashInChild(dir.path(), [&] {
      std::thread t([&] {  // a worker thread, as in the daemon
        CrashScope scope(bundle);
        r.crash();
      });
      t.join();
    });
    CHECK(log.ends_with("crash " + std::to_string(r.signo) + " " + bundle + "\n"));
  }
  // Each child appended to the same log: the next start counts three.
  CHECK(ParseCrashLog(test::ReadFile(dir / "crashes")).at(bundle).crashes == 3);
}

TEST_CASE("a helper thread's fault blames the only bundle being worked on") {
  test::TempDir dir;
  const std::string bundle = dir / "b.npz";
  test::WriteFile(bundle, "x");
  const std::string log = CrashInChild(dir.path(), [&] {
    CrashScope scope(bundle);
    std::thread helper([] { test::StoreToReadOnlyPage(); });
    helper.join();
  });
  CHECK(log == "crash 11 " + bundle + "\n");
}

TEST_CASE("kill from outside, or a crash outside any bundle, blames no bundle") {
  test::TempDir dir;
  const std::string bundle = dir / "c.npz";
  test::WriteFile(bundle, "x");
  CHECK(CrashInChild(dir.path(), [&] {
          CrashScope scope(bundle);
          kill(getpid(), SIGSEGV);  // as `kill -SEGV <pid>` does: SI_USER
          pause();
        }) == "");
  CHECK(CrashInChild(dir.path(), [&] {
          CrashScope scope(bundle);
          kill(getpid(), SIGABRT);  // systemd's watchdog
          pause();
        }) == "");
  CHECK(CrashInChild(dir.path(), [] { test::StoreToReadOnlyPage(); }) == "");
}

TEST_CASE("at start the guard forgets bundles that are gone and rewrites the log") {
  test::TempDir dir;
  const std::string kept = dir / "kept.npz";
  test::WriteFile(kept, "x");
  test::WriteFile(dir / "crashes", "crash 11 " + kept + "\ncrash 11 " + dir.path() +
                                       "/gone.npz\ncrash 6 " + kept + "\n");
  const pid_t pid = fork();  // the guard installs handlers: keep them out of this process
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto h = StartCrashGuard(dir.path());
    _exit(h.ok() && h->size() == 1 && h->at(kept).crashes == 2 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(test::ReadFile(dir / "crashes") == "crash 6 " + kept + "\ncrash 6 " + kept + "\n");
}

}  // namespace
}  // namespace wd
