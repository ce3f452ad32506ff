#include "daemon/inotify_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace wd {

Result<std::unique_ptr<InotifyWatcher>> InotifyWatcher::Create(uv_loop_t* loop, Callback cb) {
  std::unique_ptr<InotifyWatcher> w(new InotifyWatcher());
  w->fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (w->fd_ < 0) return ErrnoStatus("inotify_init1", errno);
  w->cb_ = std::move(cb);
  w->poll_ = new uv_poll_t;
  w->poll_->data = w.get();
  if (int rc = uv_poll_init(loop, w->poll_, w->fd_); rc != 0) {
    delete w->poll_;
    w->poll_ = nullptr;
    return Status::Environment(std::string("uv_poll_init: ") + uv_strerror(rc));
  }
  uv_poll_start(w->poll_, UV_READABLE, [](uv_poll_t* h, int status, int) {
    if (status == 0 && h->data != nullptr) static_cast<InotifyWatcher*>(h->data)->OnReadable();
  });
  return w;
}

InotifyWatcher::~InotifyWatcher() {
  Close();
  if (fd_ >= 0) close(fd_);
}

Result<int> InotifyWatcher::Add(const std::string& dir) {
  const uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY |
                        IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                        IN_DONT_FOLLOW | IN_EXCL_UNLINK;
  const int wd = inotify_add_watch(fd_, dir.c_str(), mask);
  if (wd < 0) return ErrnoStatus("cannot watch " + dir, errno);
  return wd;
}

void InotifyWatcher::Remove(int wd) { inotify_rm_watch(fd_, wd); }

void InotifyWatcher::Close() {
  if (poll_ == nullptr) return;
  poll_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(poll_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  poll_ = nullptr;
}

void InotifyWatcher::OnReadable() {
  alignas(inotify_event) char buf[64 * 1024];
  for (;;) {
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) return;  // EAGAIN: drained
    for (ssize_t off = 0; off < n;) {
      inotify_event ev;
      std::memcpy(&ev, buf + off, sizeof ev);
      Event e{.wd = ev.wd, .mask = ev.mask, .name = ""};
      if (ev.len > 0)
        e.name = std::string(buf + off + sizeof ev, strnlen(buf + off + sizeof ev, ev.len));
      off += static_cast<ssize_t>(sizeof ev + ev.len);
      cb_(e);
    }
  }
}

}  // namespace wd
