#include "core/status.h"

#include <cstring>

namespace wd {

Status ErrnoStatus(const std::string& what, int err) {
  return Status::Environment(what + ": " + std::strerror(err));
}

}  // namespace wd
