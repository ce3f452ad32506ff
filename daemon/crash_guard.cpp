#include "daemon/crash_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/file_system.h"

namespace wd {
namespace {

constexpr const char* kLogName = "crashes";
constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
constexpr size_t kMaxPath = 4096 * 2 + 16;  // escaped: every byte may double
constexpr size_t kAltStackBytes = 64 * 1024;

// One per bundle being worked on. Written by its worker before `busy` is
// set, read by the signal handler after it sees `busy`.
struct Slot {
  std::atomic<bool> busy{false};
  std::atomic<size_t> len{0};  // 0 while `path` is being written
  char path[kMaxPath];         // escaped, as in the log
};
Slot g_slots[64];
std::atomic<int> g_fd{-1};
struct sigaction g_previous[sizeof kSignals / sizeof kSignals[0]];
thread_local Slot* t_slot = nullptr;
thread_local bool t_altstack = false;

std::string Escape(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      out += s[i + 1] == 'n' ? '\n' : s[i + 1];
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Async-signal-safe: appends the decimal digits of v.
size_t PutInt(char* p, int v) {
  char tmp[16];
  size_t n = 0;
  unsigned u = v < 0 ? 0u : static_cast<unsigned>(v);
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && n < sizeof tmp);
  for (size_t i = 0; i < n; ++i) p[i] = tmp[n - 1 - i];
  return n;
}

// The slot whose bundle a fatal signal on this thread is blamed on.
// Async-signal-safe.
const Slot* Culprit() {
  if (t_slot != nullptr) return t_slot;
  const Slot* only = nullptr;  // a helper thread (read-ahead): blame the only job
  for (const Slot& s : g_slots) {
    if (!s.busy.load(std::memory_order_acquire)) continue;
    if (only != nullptr) return nullptr;
    only = &s;
  }
  return only;
}

// Runs on whichever thread the signal hit; async-signal-safe only.
void OnFatalSignal(int signo, siginfo_t* info, void*) {
  const int saved_errno = errno;
  // si_code > 0: the kernel raised it for a fault of this thread. SI_TKILL
  // from our own pid: abort() or raise(). Anything else was sent from
  // outside (kill -SEGV, systemd's watchdog SIGABRT) and blames no bundle.
  const bool ours = info != nullptr &&
                    (info->si_code > 0 || (info->si_code == SI_TKILL && info->si_pid == getpid()));
  const int fd = g_fd.load(std::memory_order_relaxed);
  const Slot* s = ours && fd >= 0 ? Culprit() : nullptr;
  if (s != nullptr && s->len.load(std::memory_order_acquire) != 0) {
    char line[kMaxPath + 32];
    size_t n = 0;
    std::memcpy(line, "crash ", 6);
    n += 6;
    n += PutInt(line + n, signo);
    line[n++] = ' ';
    const size_t len = std::min(s->len.load(std::memory_order_acquire), kMaxPath);
    std::memcpy(line + n, s->path, len);
    n += len;
    line[n++] = '\n';
    ssize_t w = write(fd, line, n);
    // The same record on stderr (the journal): "weightdrop: crash 11 <path>".
    w = write(STDERR_FILENO, "weightdrop: ", 12);
    w = write(STDERR_FILENO, line, n);
    (void)w;
  }
  // The previous action (the default, or a sanitizer's report) takes over.
  for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
    if (kSignals[i] == signo) sigaction(signo, &g_previous[i], nullptr);
  }
  errno = saved_errno;
  // A fault re-executes and faults again once we return; a sent signal is
  // raised again (it stays blocked until the handler returns).
  if (info == nullptr || info->si_code <= 0) raise(signo);
}

void InstallAltStack() noexcept {
  if (t_altstack) return;
  t_altstack = true;
  stack_t old{};
  if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE)) return;  // has one
  void* mem =
      mmap(nullptr, kAltStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = kAltStackBytes;
  // Kept for the thread's life: libuv's workers live as long as the process.
  if (sigaltstack(&ss, nullptr) != 0) munmap(mem, kAltStackBytes);
}

void AppendRecord(const std::string& line) noexcept {
  const int fd = g_fd.load(std::memory_order_relaxed);
  if (fd < 0) return;
  ssize_t w = write(fd, line.data(), line.size());  // O_APPEND: one record, whole
  (void)w;
}

}  // namespace

CrashHistory ParseCrashLog(std::string_view text) {
  CrashHistory h;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;  // a torn last line
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line.starts_with("done ")) {
      h.erase(Unescape(line.substr(5)));
    } else if (line.starts_with("crash ")) {
      line.remove_prefix(6);
      const size_t sp = line.find(' ');
      if (sp == 0 || sp == std::string_view::npos || sp > 3) continue;
      int signo = 0;
      bool digits = true;
      for (char c : line.substr(0, sp)) {
        if (c < '0' || c > '9') digits = false;
        signo = signo * 10 + (c - '0');
      }
      if (!digits || sp + 1 == line.size()) continue;
      CrashRecord& r = h[Unescape(line.substr(sp + 1))];
      ++r.crashes;
      r.last_signal = signo;
    }
  }
  return h;
}

std::string CrashLogText(const CrashHistory& history) {
  std::string out;
  for (const auto& [path, r] : history) {
    for (int i = 0; i < r.crashes; ++i) {
      out += "crash " + std::to_string(r.last_signal) + " " + Escape(path) + "\n";
    }
  }
  return out;
}

std::string SignalName(int signo) {
  switch (signo) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
    default:
      return "signal " + std::to_string(signo);
  }
}

Result<CrashHistory> StartCrashGuard(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  const std::string path = state_dir + "/" + kLogName;
  FileSystem& fs = DefaultFileSystem();
  CrashHistory history;
  if (fs.Exists(path)) {
    WD_ASSIGN_OR_RETURN(std::string text, fs.ReadFile(path, 16u << 20));
    history = ParseCrashLog(text);
  }
  for (auto it = history.begin(); it != history.end();) {
    struct stat st;
    it = lstat(it->first.c_str(), &st) == 0 ? std::next(it) : history.erase(it);
  }
  WD_RETURN_IF_ERROR(fs.WriteFileAtomically(path, CrashLogText(history)));
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return ErrnoStatus("cannot open " + path, errno);
  const int old = g_fd.exchange(fd);
  if (old >= 0) close(old);
  struct sigaction sa {};
  sa.sa_sigaction = OnFatalSignal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
    struct sigaction previous {};
    sigaction(kSignals[i], &sa, &previous);
    if (previous.sa_sigaction != OnFatalSignal) g_previous[i] = previous;
  }
  return history;
}

CrashScope::CrashScope(const std::string& path) noexcept : slot_(nullptr) {
  InstallAltStack();
  if (t_slot != nullptr) return;  // nested: the outer bundle stays marked
  for (Slot& s : g_slots) {
    bool expected = false;
    // The handler reads `path` only once `len` is set (it is 0 while free).
    if (!s.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) continue;
    size_t n = 0;
    for (char c : path) {
      const bool esc = c == '\\' || c == '\n';
      if (n + (esc ? 2 : 1) > kMaxPath) break;
      if (esc) s.path[n++] = '\\';
      s.path[n++] = c == '\n' ? 'n' : c;
    }
    s.len.store(n, std::memory_order_release);
    slot_ = &s;
    t_slot = &s;
    return;
  }
}

CrashScope::~CrashScope() {
  if (slot_ == nullptr) return;
  auto* s = static_cast<Slot*>(slot_);
  t_slot = nullptr;
  s->len.store(0, std::memory_order_release);
  s->busy.store(false, std::memory_order_release);
}

void NoteCrashResolved(const std::string& path) noexcept {
  try {
    AppendRecord("done " + Escape(path) + "\n");
  } catch (...) {  // out of memory: the record stays, and counts at most once more
  }
}

}  // namespace wd
