#include "core/status.h"

#include <cstring>
#include <exception>
#include <new>

namespace wd {

Status ErrnoStatus(const std::string& what, int err) {
  return Status::Environment(what + ": " + std::strerror(err));
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
