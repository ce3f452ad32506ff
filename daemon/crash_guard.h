// CrashGuard: the start-up poison-pill guard (docs/operations.md, "Crash
// quarantine"). A worker marks the bundle it works on; a fatal signal raised
// by that work appends "crash <signal> <path>" to state_dir/crashes before the
// process dies, and the next start counts those records so that a bundle that
// keeps crashing the daemon is quarantined instead of retried forever.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/status.h"

namespace wd {

// A bundle is quarantined at the start after it crashed the daemon this many
// times without finishing in between. One crash may be bad luck; a second
// one at the very next attempt is a pattern. It must stay below systemd's
// StartLimitBurst (5): starts 1 and 2 crash, start 3 quarantines.
constexpr int kQuarantineAfterCrashes = 2;

struct CrashRecord {
  int crashes = 0;      // since the bundle last finished
  int last_signal = 0;  // of the last crash
};
using CrashHistory = std::map<std::string, CrashRecord>;  // by bundle path

// The log's grammar: one record a line, "crash <signo> <path>" or "done
// <path>"; in the path '\\' is "\\\\" and a newline "\\n". "done" clears the
// path's count; malformed lines are skipped.
CrashHistory ParseCrashLog(std::string_view text);
std::string CrashLogText(const CrashHistory& history);  // "crash" lines only

// "SIGSEGV", "SIGABRT", ... or "signal N".
std::string SignalName(int signo);

// Start-up, on the main thread before any worker runs: reads
// state_dir/crashes, forgets bundles that no longer exist, rewrites it
// atomically, keeps it open for appending and installs the handlers for
// SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT. Returns what crashed before
// this start. On error (state_dir not writable) nothing is installed.
Result<CrashHistory> StartCrashGuard(const std::string& state_dir);

// Marks `path` as the bundle the calling worker thread works on until the
// scope ends; the first scope on a thread gives it an alternate signal
// stack, so a stack overflow is recorded too. A fatal signal raised by the
// process itself (a fault, abort(), raise()) on this thread — or on a helper
// thread while this is the only bundle being worked on — is recorded.
// kill(1) from outside (SIGKILL, an operator's kill -SEGV, the watchdog's
// SIGABRT) never is. Never throws.
class CrashScope {
 public:
  explicit CrashScope(const std::string& path) noexcept;
  ~CrashScope();
  CrashScope(const CrashScope&) = delete;
  CrashScope& operator=(const CrashScope&) = delete;

 private:
  void* slot_;
};

// Worker thread: appends "done <path>" (the bundle left processing/ or the
// drop folder) so its earlier crashes stop counting. Never throws.
void NoteCrashResolved(const std::string& path) noexcept;

}  // namespace wd
