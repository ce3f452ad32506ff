// HookRunner: one Proc per started hook owns its four libuv handles (process,
// stdout pipe, stderr pipe, timer) and is freed in the close callback of the
// last of them. A hook is finished once its exit has been seen AND both pipes
// reached EOF, so every output line is logged before `done` runs.
//
// Every function here runs on the loop thread. No exception leaves a libuv
// callback: each one runs its body through Guarded().
#include "daemon/hook_runner.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/types.h>

#include <algorithm>
#include <exception>
#include <string_view>
#include <utility>

extern char** environ;

namespace wd {
namespace {

// After a SIGKILL, how long the pipes may stay open (a writer that left the
// process group) before we stop reading them and report the hook as done.
constexpr Millis kKillGrace{2000};
// A line longer than this is logged in pieces instead of growing forever.
constexpr size_t kMaxLine = 64 * 1024;
// vars key -> environment variable.
constexpr std::pair<const char*, const char*> kEnvVars[] = {
    {"model", "WEIGHTDROP_MODEL"}, {"version", "WEIGHTDROP_VERSION"},
    {"dir", "WEIGHTDROP_DIR"},     {"manifest", "WEIGHTDROP_MANIFEST"},
    {"url", "WEIGHTDROP_URL"},     {"bundle", "WEIGHTDROP_BUNDLE"},
    {"error", "WEIGHTDROP_ERROR"},
};
constexpr const char* kEventVar = "WEIGHTDROP_EVENT";

template <typename F>
void Guarded(const char* where, F&& body) noexcept {
  try {
    body();
  } catch (const std::exception& e) {
    try {
      spdlog::error("internal error in hook runner ({}): {}", where, e.what());
    } catch (...) {
    }
  } catch (...) {
    try {
      spdlog::error("internal error in hook runner ({})", where);
    } catch (...) {
    }
  }
}

std::string VarOrEmpty(const std::map<std::string, std::string>& vars, const std::string& key) {
  auto it = vars.find(key);
  return it == vars.end() ? std::string() : it->second;
}

bool IsOurVariable(std::string_view entry) {
  auto matches = [&](std::string_view name) {
    return entry.size() > name.size() && entry.substr(0, name.size()) == name &&
           entry[name.size()] == '=';
  };
  if (matches(kEventVar)) return true;
  return std::any_of(std::begin(kEnvVars), std::end(kEnvVars),
                     [&](const auto& kv) { return matches(kv.second); });
}

// What a hook's log lines name: its model, or, for a bundle that never got
// one (its name makes no valid model name, e.g. "my model.npz": {model} is
// empty then), the bundle's file name in quotes, which may hold spaces.
std::string HookSubject(const HookEvent& e) {
  const std::string model = VarOrEmpty(e.vars, "model");
  if (!model.empty()) return model;
  const std::string bundle = VarOrEmpty(e.vars, "bundle");
  if (bundle.empty()) return "(no model)";
  return "'" + bundle.substr(bundle.rfind('/') + 1) + "'";
}

// The parent's environment with our WEIGHTDROP_* variables replaced.
std::vector<std::string> HookEnvironment(const HookEvent& e) {
  std::vector<std::string> env;
  for (char** p = environ; p != nullptr && *p != nullptr; ++p) {
    if (!IsOurVariable(*p)) env.emplace_back(*p);
  }
  for (const auto& [key, name] : kEnvVars) {
    env.push_back(std::string(name) + "=" + VarOrEmpty(e.vars, key));
  }
  env.push_back(std::string(kEventVar) + "=" + e.event);
  return env;
}

// NULL-terminated char* view of `strings`, which must outlive the result.
std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

struct HookRunner::Proc {
  struct Stream {
    Proc* proc = nullptr;
    uv_pipe_t pipe;
    std::string partial;  // bytes after the last '\n'
    bool eof = false;
    char buf[16 * 1024];
  };

  HookRunner* owner;  // null once the runner is destroyed
  std::string event;
  std::string subject;  // HookSubject(): what its log lines name
  std::function<void(int)> done;
  Millis timeout{0};
  uv_process_t process;
  uv_timer_t timer;
  Stream out;
  Stream err;
  int open_handles = 0;
  bool exited = false;
  bool killed = false;    // we sent SIGKILL to the group
  bool closing = false;   // handles are being closed
  bool reported = false;  // done has been called
  int code = -1;

  Proc(HookRunner* r, const HookEvent& e, std::function<void(int)> d)
      : owner(r), event(e.event), subject(HookSubject(e)), done(std::move(d)) {}

  void Start(char** c_args, char** c_env);
  void Line(std::string_view line) const { spdlog::info("hook {} {}: {}", event, subject, line); }
  void Append(Stream& s, std::string_view data) const;
  void Flush(Stream& s) const;
  void KillGroup();
  void MaybeFinish();
  void Finish();
  void Report(int c);

  static void OnExit(uv_process_t* h, int64_t status, int term_signal);
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* h, ssize_t nread, const uv_buf_t* buf);
  static void OnTimer(uv_timer_t* h);
  static void OnClose(uv_handle_t* h);
};

// Initializes all four handles, then spawns `c_args` with `c_env` (both
// NULL-terminated). On a spawn failure the handles are closed at once and
// `done(-1)` follows from the last close callback. Throws nothing.
void HookRunner::Proc::Start(char** c_args, char** c_env) {
  out.proc = this;
  err.proc = this;
  uv_loop_t* loop = owner->loop_;
  uv_pipe_init(loop, &out.pipe, 0);
  uv_pipe_init(loop, &err.pipe, 0);
  uv_timer_init(loop, &timer);
  out.pipe.data = &out;
  err.pipe.data = &err;
  timer.data = this;
  process.data = this;
  open_handles = 4;  // uv_spawn initializes `process` even when it fails

  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(&out.pipe);
  stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(&err.pipe);

  uv_process_options_t opts{};
  opts.exit_cb = &Proc::OnExit;
  opts.file = c_args[0];
  opts.args = c_args;
  opts.env = c_env;
  // A new session: the hook leads its own process group, so a timeout can
  // kill everything it started with kill(-pid, SIGKILL).
  opts.flags = UV_PROCESS_DETACHED;
  opts.stdio_count = 3;
  opts.stdio = stdio;

  const int rc = uv_spawn(loop, &process, &opts);
  if (rc != 0) {
    spdlog::error("hook {} {}: cannot start '{}': {}", event, subject, c_args[0], uv_strerror(rc));
    code = -1;
    Finish();
    return;
  }
  uv_read_start(reinterpret_cast<uv_stream_t*>(&out.pipe), &Proc::OnAlloc, &Proc::OnRead);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&err.pipe), &Proc::OnAlloc, &Proc::OnRead);
  if (timeout.count() > 0) {
    uv_timer_start(&timer, &Proc::OnTimer, static_cast<uint64_t>(timeout.count()), 0);
  }
}

void HookRunner::Proc::Append(Stream& s, std::string_view data) const {
  s.partial.append(data);
  size_t start = 0;
  for (size_t nl; (nl = s.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    size_t end = nl;
    if (end > start && s.partial[end - 1] == '\r') --end;
    Line(std::string_view(s.partial).substr(start, end - start));
  }
  s.partial.erase(0, start);
  if (s.partial.size() >= kMaxLine) Flush(s);
}

void HookRunner::Proc::Flush(Stream& s) const {
  if (!s.partial.empty()) Line(s.partial);
  s.partial.clear();
}

// SIGKILLs the hook's process group and gives the pipes kKillGrace to close.
void HookRunner::Proc::KillGroup() {
  killed = true;
  if (process.pid > 0) kill(-process.pid, SIGKILL);
  uv_timer_start(&timer, &Proc::OnTimer, static_cast<uint64_t>(kKillGrace.count()), 0);
}

void HookRunner::Proc::MaybeFinish() {
  if (exited && out.eof && err.eof) Finish();
}

void HookRunner::Proc::Finish() {
  if (closing) return;
  closing = true;
  Flush(out);
  Flush(err);
  uv_close(reinterpret_cast<uv_handle_t*>(&process), &Proc::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&out.pipe), &Proc::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&err.pipe), &Proc::OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), &Proc::OnClose);
}

void HookRunner::Proc::Report(int c) {
  if (reported) return;
  reported = true;
  auto d = std::move(done);
  if (d) d(c);
}

void HookRunner::Proc::OnExit(uv_process_t* h, int64_t status, int term_signal) {
  auto* p = static_cast<Proc*>(h->data);
  Guarded("hook exit", [&] {
    p->exited = true;
    if (!p->killed) {
      if (term_signal != 0) {
        p->code = 128 + term_signal;
        spdlog::warn("hook {} {} killed by signal {}", p->event, p->subject, term_signal);
      } else {
        p->code = static_cast<int>(status);
        if (status != 0) {
          spdlog::warn("hook {} {} exited with status {}", p->event, p->subject, status);
        } else {
          spdlog::debug("hook {} {} exited with status 0", p->event, p->subject);
        }
      }
    }
    p->MaybeFinish();
  });
}

void HookRunner::Proc::OnAlloc(uv_handle_t* h, size_t /*suggested*/, uv_buf_t* buf) {
  auto* s = static_cast<Stream*>(h->data);
  *buf = uv_buf_init(s->buf, sizeof(s->buf));
}

void HookRunner::Proc::OnRead(uv_stream_t* h, ssize_t nread, const uv_buf_t* buf) {
  auto* s = static_cast<Stream*>(h->data);
  Proc* p = s->proc;
  Guarded("hook output", [&] {
    if (nread > 0) {
      p->Append(*s, std::string_view(buf->base, static_cast<size_t>(nread)));
      return;
    }
    if (nread == 0) return;  // EAGAIN
    if (nread != UV_EOF) {
      spdlog::debug("hook {} {}: reading output: {}", p->event, p->subject,
                    uv_strerror(static_cast<int>(nread)));
    }
    s->eof = true;
    p->Flush(*s);
    uv_read_stop(h);
    p->MaybeFinish();
  });
}

// First firing: the timeout. Second firing: the kill grace ran out with a pipe
// still open (some writer left the group); stop waiting for it.
void HookRunner::Proc::OnTimer(uv_timer_t* h) {
  auto* p = static_cast<Proc*>(h->data);
  Guarded("hook timer", [&] {
    if (p->closing) return;
    if (p->killed) {
      spdlog::warn("hook {} {}: output still open {}s after SIGKILL; no longer reading it",
                   p->event, p->subject, kKillGrace.count() / 1000.0);
      p->Finish();
      return;
    }
    p->code = -1;
    p->KillGroup();
    spdlog::warn("hook {} {} timed out after {:g}s: killed", p->event, p->subject,
                 p->timeout.count() / 1000.0);
  });
}

void HookRunner::Proc::OnClose(uv_handle_t* h) {
  Proc* p;
  if (h->type == UV_NAMED_PIPE) {
    p = static_cast<Stream*>(h->data)->proc;
  } else {
    p = static_cast<Proc*>(h->data);
  }
  if (--p->open_handles > 0) return;
  Guarded("hook close", [&] {
    if (p->owner != nullptr) {
      auto& procs = p->owner->procs_;
      procs.erase(std::remove(procs.begin(), procs.end(), p), procs.end());
    }
    const bool report = !p->reported;
    const int code = p->code;
    auto done = std::move(p->done);
    delete p;
    if (report && done) done(code);
  });
}

HookRunner::HookRunner(uv_loop_t* loop) : loop_(loop) {}

// Hooks still running are killed and reported (-1); their handles close on
// the loop shortly after, without us: the caller keeps running the loop.
HookRunner::~HookRunner() {
  KillAll();
  for (Proc* p : procs_) p->owner = nullptr;
}

void HookRunner::Run(const std::vector<std::string>& argv, const HookEvent& e, Millis timeout,
                     std::function<void(int)> done) {
  // Everything that can throw happens before a handle exists.
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> c_args;
  std::vector<char*> c_env;
  Proc* p = nullptr;
  try {
    for (const auto& a : argv) args.push_back(SubstitutePlaceholders(a, e.vars));
    if (args.empty()) args.emplace_back();  // uv_spawn reports ENOENT
    env = HookEnvironment(e);
    c_args = CStrings(args);
    c_env = CStrings(env);
    p = new Proc(this, e, done);
    p->timeout = timeout;
    procs_.push_back(p);
  } catch (const std::exception& ex) {
    delete p;
    spdlog::error("hook {}: cannot start: {}", e.event, ex.what());
    Guarded("hook done", [&] {
      if (done) done(-1);
    });
    return;
  }
  p->Start(c_args.data(), c_env.data());
}

size_t HookRunner::running() const {
  return static_cast<size_t>(
      std::count_if(procs_.begin(), procs_.end(), [](const Proc* p) { return !p->reported; }));
}

// Reports every hook now: finished ones with their code, running ones with
// -1 after SIGKILLing their group. No `done` runs after this returns.
void HookRunner::KillAll() {
  const std::vector<Proc*> procs = procs_;  // done() may start new hooks
  for (Proc* p : procs) {
    if (p->reported) continue;
    Guarded("hook kill", [&] {
      if (!p->closing) {
        p->code = -1;
        p->KillGroup();
        spdlog::warn("hook {} {} killed at shutdown", p->event, p->subject);
      }
      p->Report(p->code);
    });
  }
}

std::string SubstitutePlaceholders(const std::string& arg,
                                   const std::map<std::string, std::string>& vars) {
  std::string out;
  size_t i = 0;
  while (i < arg.size()) {
    const size_t open = arg.find('{', i);
    const size_t close = open == std::string::npos ? open : arg.find('}', open + 1);
    if (close == std::string::npos) break;
    out.append(arg, i, open - i);
    auto it = vars.find(arg.substr(open + 1, close - open - 1));
    if (it == vars.end()) {
      out.push_back('{');  // not ours: keep it, look again after the brace
      i = open + 1;
    } else {
      out += it->second;
      i = close + 1;
    }
  }
  if (i < arg.size()) out.append(arg, i);
  return out;
}

}  // namespace wd
