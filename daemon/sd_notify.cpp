// SdNotifier: sd_notify(3) by hand. NOTIFY_SOCKET is a filesystem path
// ("/run/systemd/notify") or, with a leading '@', a name in the abstract
// namespace whose sockaddr starts with a NUL byte and has an exact length.
// Thread-agnostic: Notify() is one sendto() and never blocks.
#include "daemon/sd_notify.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace wd {
namespace {

// A positive decimal integer, or nothing (signs, spaces, junk: nothing).
std::optional<unsigned long long> ParsePositive(const char* text) {
  if (text == nullptr || *text < '0' || *text > '9') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0) return std::nullopt;
  return v;
}

// Half of WATCHDOG_USEC when it is set and meant for us (WATCHDOG_PID unset
// or equal to our pid), as sd_watchdog_enabled(3) decides.
std::optional<std::chrono::microseconds> WatchdogFromEnvironment() {
  const auto usec = ParsePositive(std::getenv("WATCHDOG_USEC"));
  if (!usec) return std::nullopt;
  const char* pid_text = std::getenv("WATCHDOG_PID");
  if (pid_text != nullptr && *pid_text != '\0') {
    const auto pid = ParsePositive(pid_text);
    if (!pid || *pid != static_cast<unsigned long long>(getpid())) return std::nullopt;
  }
  return std::chrono::microseconds(std::max<unsigned long long>(*usec / 2, 1));
}

// Fills `sa` for `address` ('/' path or '@' abstract); returns its length, or
// 0 when the address cannot be a unix socket address.
socklen_t MakeAddress(const std::string& address, sockaddr_un* sa) {
  std::memset(sa, 0, sizeof(*sa));
  sa->sun_family = AF_UNIX;
  const bool abstract = !address.empty() && address[0] == '@';
  const bool path = !address.empty() && address[0] == '/';
  // A path needs room for its terminating NUL; an abstract name does not.
  if (!(abstract || path) || address.size() + (path ? 1 : 0) > sizeof(sa->sun_path)) return 0;
  std::memcpy(sa->sun_path, address.data(), address.size());
  if (abstract) sa->sun_path[0] = '\0';
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + (path ? 1 : 0));
}

}  // namespace

SdNotifier SdNotifier::FromEnvironment() {
  SdNotifier n;
  const char* socket_env = std::getenv("NOTIFY_SOCKET");
  if (socket_env == nullptr || *socket_env == '\0') return n;
  sockaddr_un sa;
  if (MakeAddress(socket_env, &sa) == 0) {
    spdlog::warn("NOTIFY_SOCKET='{}' is not a unix socket path or @name: not notifying systemd",
                 socket_env);
    return n;
  }
  n.fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (n.fd_ < 0) {
    spdlog::warn("cannot create the sd_notify socket: {}", std::strerror(errno));
    return n;
  }
  n.address_ = socket_env;
  // A watchdog without a socket to ping it on would only get us killed.
  n.watchdog_ = WatchdogFromEnvironment();
  return n;
}

SdNotifier::~SdNotifier() {
  if (fd_ >= 0) close(fd_);
}

SdNotifier::SdNotifier(SdNotifier&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      address_(std::move(other.address_)),
      watchdog_(std::exchange(other.watchdog_, std::nullopt)) {}

SdNotifier& SdNotifier::operator=(SdNotifier&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    address_ = std::move(other.address_);
    watchdog_ = std::exchange(other.watchdog_, std::nullopt);
  }
  return *this;
}

void SdNotifier::Notify(const std::string& state) const {
  if (fd_ < 0) return;
  sockaddr_un sa;
  const socklen_t len = MakeAddress(address_, &sa);
  // MSG_DONTWAIT: a full receive queue drops the message instead of stalling
  // the loop thread.
  if (sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
             reinterpret_cast<const sockaddr*>(&sa), len) < 0) {
    spdlog::debug("sd_notify to {}: {}", address_, std::strerror(errno));
  }
}

std::string SdNotifier::ReloadingMessage() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const long long usec = static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

}  // namespace wd
