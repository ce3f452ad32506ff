// Daemon: `weightdrop run` (docs/operations.md). One libuv loop watches the drop
// folders, decides when a bundle is ready, claims it, queues it per model and
// hands publishing to worker threads; it only records state on the loop.
// Hooks, signals, sd_notify, status files and reloads hang off the same loop.
#pragma once

#include <functional>
#include <string>

namespace wd {

// Test seams, empty in the shipped binary (daemon/main.cpp never sets them;
// tests/fault_daemon_main.cpp, a test-only executable, does).
struct DaemonTestHooks {
  // Called on the worker thread of a publish job, inside the job's crash
  // scope and exception guard, before the bundle is read.
  std::function<void(const std::string& bundle_path)> before_publish;
};

// Runs the daemon with the config at `config_path` until SIGTERM/SIGINT.
// Returns the process exit code; the loop is closed cleanly before return.
int RunDaemon(const std::string& config_path, const DaemonTestHooks& hooks = {});

}  // namespace wd
