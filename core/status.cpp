#include "core/status.h"

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>

namespace wd {

Status ErrnoStatus(const std::string& what, int err) {
  return Status::Error(ErrorKind::kEnvironment, what + ": " + std::strerror(err), err);
}

Status OnBundleSide(Status s) {
  if (s.ok() || s.kind() != ErrorKind::kEnvironment) return s;
  switch (s.sys_errno()) {
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EINTR:
    case EAGAIN:
      return s;
    default:
      return Status::Error(ErrorKind::kUnreadable, s.message(), s.sys_errno());
  }
}

Status InternalErrorFromException(const char* doing, const std::string& subject) noexcept {
  try {
    std::string what = "unknown exception";
    try {
      throw;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    return Status::Internal("internal error while " + std::string(doing) + " " + subject + ": " +
                            what);
  } catch (...) {
    // Out of memory while building the message: a short string needs no
    // allocation (small-string buffer).
    return Status::Internal("out of memory");
  }
}

}  // namespace wd
