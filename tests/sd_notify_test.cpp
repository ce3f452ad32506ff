// SdNotifier against real datagram sockets (a path and an abstract name) and
// the WATCHDOG_USEC / WATCHDOG_PID rules of sd_watchdog_enabled(3).
#include "daemon/sd_notify.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>

#include "tests/test_util.h"

namespace wd {
namespace {

using test::ScopedEnv;

// A bound SOCK_DGRAM unix socket playing systemd's part.
class Receiver {
 public:
  // `address` as NOTIFY_SOCKET spells it: a path or "@name".
  explicit Receiver(const std::string& address) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    REQUIRE(address.size() < sizeof(sa.sun_path));
    std::memcpy(sa.sun_path, address.data(), address.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
    if (address[0] == '@') {
      sa.sun_path[0] = '\0';  // abstract: the length is exact, no NUL at the end
    } else {
      len += 1;
    }
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) == 0);
  }
  ~Receiver() { close(fd_); }
  // The next datagram, or nullopt if none is queued.
  std::optional<std::string> Next() {
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  int fd_ = -1;
};

std::string UniqueAbstractName() {
  std::random_device rd;
  return "@wd-sd-notify-test-" + std::to_string(getpid()) + "-" + std::to_string(rd());
}

long long MonotonicMicros() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000LL + ts.tv_nsec / 1000;
}

TEST_CASE("without NOTIFY_SOCKET the notifier is off and silent") {
  ScopedEnv socket_env("NOTIFY_SOCKET", nullptr);
  ScopedEnv usec("WATCHDOG_USEC", "2000000");
  SdNotifier n = SdNotifier::FromEnvironment();
  CHECK_FALSE(n.enabled());
  CHECK_FALSE(n.WatchdogInterval().has_value());
  n.Notify("READY=1");  // a no-op, not a crash
}

TEST_CASE("messages arrive as single datagrams on a socket path") {
  test::TempDir dir;
  const std::string path = dir / "notify";
  Receiver systemd(path);
  ScopedEnv socket_env("NOTIFY_SOCKET", path.c_str());
  SdNotifier n = SdNotifier::FromEnvironment();
  REQUIRE(n.enabled());
  n.Notify("READY=1");
  n.Notify("STATUS=queued 2, published 5\nWATCHDOG=1");
  CHECK(systemd.Next() == std::optional<std::string>("READY=1"));
  CHECK(systemd.Next() == std::optional<std::string>("STATUS=queued 2, published 5\nWATCHDOG=1"));
  CHECK_FALSE(systemd.Next().has_value());
}

TEST_CASE("an @name NOTIFY_SOCKET is sent to the abstract namespace with its exact length") {
  const std::string name = UniqueAbstractName();
  Receiver systemd(name);
  ScopedEnv socket_env("NOTIFY_SOCKET", name.c_str());
  SdNotifier n = SdNotifier::FromEnvironment();
  REQUIRE(n.enabled());
  n.Notify("STOPPING=1");
  CHECK(systemd.Next() == std::optional<std::string>("STOPPING=1"));
}

TEST_CASE("a NOTIFY_SOCKET that is no unix address leaves the notifier off") {
  const std::string too_long = "/" + std::string(200, 'x');
  for (const char* value : {"vsock:2:1234", "relative/path", too_long.c_str()}) {
    CAPTURE(value);
    ScopedEnv socket_env("NOTIFY_SOCKET", value);
    CHECK_FALSE(SdNotifier::FromEnvironment().enabled());
  }
}

TEST_CASE("a vanished systemd socket does not make Notify fail") {
  test::TempDir dir;
  ScopedEnv socket_env("NOTIFY_SOCKET", (dir / "gone").c_str());
  SdNotifier n = SdNotifier::FromEnvironment();
  CHECK(n.enabled());
  n.Notify("READY=1");
}

TEST_CASE("the watchdog interval is half of WATCHDOG_USEC when it is meant for us") {
  test::TempDir dir;
  const std::string path = dir / "notify";
  Receiver systemd(path);
  ScopedEnv socket_env("NOTIFY_SOCKET", path.c_str());
  const std::string our_pid = std::to_string(getpid());
  const std::string other_pid = std::to_string(getpid() + 1);
  struct Row {
    const char* usec;
    const char* pid;
    std::optional<long long> interval_us;
  };
  const Row rows[] = {
      {nullptr, nullptr, std::nullopt},
      {"20000000", nullptr, 10000000},
      {"20000000", "", 10000000},
      {"20000000", our_pid.c_str(), 10000000},
      {"20000000", other_pid.c_str(), std::nullopt},
      {"20000000", "abc", std::nullopt},
      {"3", nullptr, 1},
      {"0", nullptr, std::nullopt},
      {"-5", nullptr, std::nullopt},
      {"12x", nullptr, std::nullopt},
      {"", nullptr, std::nullopt},
      {" 100", nullptr, std::nullopt},
  };
  for (const auto& row : rows) {
    CAPTURE(row.usec ? row.usec : "(unset)");
    CAPTURE(row.pid ? row.pid : "(unset)");
    ScopedEnv usec("WATCHDOG_USEC", row.usec);
    ScopedEnv pid("WATCHDOG_PID", row.pid);
    const auto got = SdNotifier::FromEnvironment().WatchdogInterval();
    REQUIRE(got.has_value() == row.interval_us.has_value());
    if (got) CHECK(got->count() == *row.interval_us);
  }
}

TEST_CASE("the reloading message carries CLOCK_MONOTONIC in microseconds") {
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  const long long before = MonotonicMicros();
  const std::string msg = SdNotifier::ReloadingMessage();
  const long long after = MonotonicMicros();
  REQUIRE(msg.rfind(prefix, 0) == 0);
  const std::string digits = msg.substr(prefix.size());
  REQUIRE_FALSE(digits.empty());
  CHECK(digits.find_first_not_of("0123456789") == std::string::npos);
  const long long usec = std::stoll(digits);
  CHECK(usec >= before);
  CHECK(usec <= after);
}

TEST_CASE("a moved notifier keeps the socket and the moved-from one is off") {
  test::TempDir dir;
  const std::string path = dir / "notify";
  Receiver systemd(path);
  ScopedEnv socket_env("NOTIFY_SOCKET", path.c_str());
  ScopedEnv usec("WATCHDOG_USEC", "1000");
  ScopedEnv pid("WATCHDOG_PID", nullptr);
  SdNotifier a = SdNotifier::FromEnvironment();
  SdNotifier b = std::move(a);
  CHECK_FALSE(a.enabled());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  REQUIRE(b.enabled());
  CHECK(b.WatchdogInterval() == std::chrono::microseconds(500));
  b.Notify("WATCHDOG=1");
  CHECK(systemd.Next() == std::optional<std::string>("WATCHDOG=1"));
  SdNotifier c = SdNotifier::FromEnvironment();
  c = std::move(b);
  c.Notify("READY=1");
  CHECK(systemd.Next() == std::optional<std::string>("READY=1"));
}

}  // namespace
}  // namespace wd
