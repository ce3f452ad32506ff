// Daemon: `weightdrop run` (SPEC §5). One libuv loop watches the drop
// folders, decides when a bundle is ready, claims it, queues it per model and
// hands publishing to worker threads; it only records state on the loop.
// Hooks, signals, sd_notify, status files and reloads hang off the same loop.
#pragma once

#include <string>

namespace wd {

// Runs the daemon with the config at `config_path` until SIGTERM/SIGINT.
// Returns the process exit code; the loop is closed cleanly before return.
int RunDaemon(const std::string& config_path);

}  // namespace wd
