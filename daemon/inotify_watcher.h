// InotifyWatcher: inotify driven directly through a uv_poll_t, because
// uv_fs_event reports create, delete and move all as UV_RENAME, hides
// IN_CLOSE_WRITE and drops IN_Q_OVERFLOW. Watches are per folder (inotify
// is not recursive); the owner adds one for every folder it cares about.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"

namespace wd {

class InotifyWatcher {
 public:
  struct Event {
    int wd = -1;  // -1 with IN_Q_OVERFLOW
    uint32_t mask = 0;
    std::string name;  // entry name inside the watched folder ("" for the folder)
  };
  using Callback = std::function<void(const Event&)>;

  // REQUIRES: every method runs on the loop thread. "loop" must outlive this.
  static Result<std::unique_ptr<InotifyWatcher>> Create(uv_loop_t* loop, Callback cb);
  ~InotifyWatcher();
  InotifyWatcher(const InotifyWatcher&) = delete;
  InotifyWatcher& operator=(const InotifyWatcher&) = delete;

  // Watches `dir` (never through a symlink) for the events a drop folder
  // needs; returns the watch descriptor.
  Result<int> Add(const std::string& dir);
  void Remove(int wd);
  // Stops polling and closes the handle; the object may be destroyed once
  // the loop has run the close callback (Close then delete is fine: the
  // handle owns a heap copy).
  void Close();

 private:
  InotifyWatcher() = default;
  void OnReadable();

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Callback cb_;
};

}  // namespace wd
