// SdNotifier: the systemd notification protocol without libsystemd — one
// datagram per message to $NOTIFY_SOCKET (abstract when it starts with '@').
// Silent no-op when the variable is unset (not run by systemd).
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace wd {

class SdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
  static SdNotifier FromEnvironment();
  ~SdNotifier();
  SdNotifier(SdNotifier&&) noexcept;
  SdNotifier& operator=(SdNotifier&&) noexcept;
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // Sends `state` (e.g. "READY=1", "STATUS=...\n..."). Errors are ignored:
  // systemd going away must not stop the daemon.
  void Notify(const std::string& state) const;
  // Half of WATCHDOG_USEC when the watchdog is on for this process.
  std::optional<std::chrono::microseconds> WatchdogInterval() const { return watchdog_; }
  // "RELOADING=1\nMONOTONIC_USEC=<now>".
  static std::string ReloadingMessage();

 private:
  SdNotifier() = default;
  int fd_ = -1;
  std::string address_;
  std::optional<std::chrono::microseconds> watchdog_;
};

}  // namespace wd
