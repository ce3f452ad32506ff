// InstanceLock: one daemon per state_dir. A second `weightdrop run` on the
// same state would watch the same folders and overwrite status.json, so
// start-up takes an exclusive flock on state_dir/weightdrop.pid (holding the
// owner's pid) for the life of the process; the kernel drops it on exit,
// kill -9 included, so a stale file never blocks a restart.
#pragma once

#include <string>

#include "core/status.h"

namespace wd {

class InstanceLock {
 public:
  // Creates state_dir if needed and takes the lock. A held lock is a
  // kConfig error: "another weightdrop (pid N) is running with state_dir D".
  static Result<InstanceLock> Acquire(const std::string& state_dir);
  InstanceLock(InstanceLock&& other) noexcept;
  InstanceLock& operator=(InstanceLock&&) = delete;
  InstanceLock(const InstanceLock&) = delete;
  ~InstanceLock();

 private:
  explicit InstanceLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace wd
