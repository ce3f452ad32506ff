// HookRunner: runs the operator's on_publish / on_failure commands with
// uv_spawn (no shell), placeholders substituted, WEIGHTDROP_* in the
// environment, output lines to the log, and the whole process group killed
// on timeout. A hook's outcome never touches the publish it reports.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/daemon_config.h"

namespace wd {

struct HookEvent {
  std::string event;                        // "publish" or "failure"
  std::map<std::string, std::string> vars;  // model, version, dir, manifest, bundle, error
};

class HookRunner {
 public:
  // REQUIRES: constructed, used and destroyed on the loop thread.
  explicit HookRunner(uv_loop_t* loop);
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  // Starts `argv` (placeholders substituted from e.vars). `done` gets the
  // exit code, or -1 for a timeout / failure to start; it runs on the loop.
  void Run(const std::vector<std::string>& argv, const HookEvent& e, Millis timeout,
           std::function<void(int)> done);
  size_t running() const;
  // Kills every running hook (process group) and closes their handles.
  void KillAll();

 private:
  struct Proc;
  uv_loop_t* loop_;
  std::vector<Proc*> procs_;
  friend struct Proc;
};

// "{model}" etc. replaced by vars[...]; unknown placeholders left as is.
std::string SubstitutePlaceholders(const std::string& arg,
                                   const std::map<std::string, std::string>& vars);

}  // namespace wd
