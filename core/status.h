// Status and Result<T>: failures as values that carry their context.
// Every message names what failed (file, member, weight, offset) and why; the
// kind tells callers whose fault it was, which decides where a bundle goes.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace wd {

enum class ErrorKind {
  kBundle,       // the input itself is bad: quarantine it
  kConfig,       // settings are invalid
  kEnvironment,  // disk full, I/O error, permissions: retry later, not the bundle's fault
  kIncomplete,   // the input is still being written (truncated for now)
  kUsage,        // bad command-line use
  kInternal,     // weightdrop's own fault (an exception, a broken invariant): never
                 // blamed on the bundle's content, but never leaves it stranded
  kUnreadable,   // this one bundle cannot be opened or read (EACCES, EIO, ENOENT
                 // under it): retried a few times, then quarantined with a hint
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(ErrorKind kind, std::string message, int sys_errno = 0) {
    Status s;
    s.ok_ = false;
    s.kind_ = kind;
    s.message_ = std::move(message);
    s.sys_errno_ = sys_errno;
    return s;
  }
  static Status Bundle(std::string m) { return Error(ErrorKind::kBundle, std::move(m)); }
  static Status Config(std::string m) { return Error(ErrorKind::kConfig, std::move(m)); }
  static Status Environment(std::string m) { return Error(ErrorKind::kEnvironment, std::move(m)); }
  static Status Incomplete(std::string m) { return Error(ErrorKind::kIncomplete, std::move(m)); }
  static Status Usage(std::string m) { return Error(ErrorKind::kUsage, std::move(m)); }
  static Status Internal(std::string m) { return Error(ErrorKind::kInternal, std::move(m)); }

  bool ok() const { return ok_; }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  // The errno behind an ErrnoStatus, else 0.
  int sys_errno() const { return sys_errno_; }

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const {
    if (ok_) return *this;
    return Error(kind_, context + ": " + message_, sys_errno_);
  }

 private:
  bool ok_ = true;
  ErrorKind kind_ = ErrorKind::kBundle;
  std::string message_;
  int sys_errno_ = 0;
};

// Environment error from errno: "<what>: <strerror>". ENOENT/EACCES etc. all
// count as environment faults; callers that know better re-kind them.
Status ErrnoStatus(const std::string& what, int err);

// For errors met while reading a bundle: an environment fault that is about
// this bundle (permissions, an I/O error, a file gone from under it) becomes
// kUnreadable; faults of the whole machine (out of space, memory or file
// descriptors) stay kEnvironment, and every other kind is kept.
Status OnBundleSide(Status s);

// The exception being handled as Status::Internal("internal error while
// <doing> <subject>: <what()>"), e.g. "internal error while publishing
// /d/b.npz: std::bad_alloc". REQUIRES: called inside a catch block. Never
// throws: when even the message cannot be built (out of memory) it returns a
// fixed one.
Status InternalErrorFromException(const char* doing, const std::string& subject) noexcept;

// Runs fn() (returning Status) and turns anything it throws into
// InternalErrorFromException(doing, subject): the one adapter between code
// that may throw (std::bad_alloc from any allocation) and callers that only
// take values — a libuv worker, main().
template <typename Fn>
Status CatchInternal(const char* doing, const std::string& subject, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (...) {
    return InternalErrorFromException(doing, subject);
  }
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace wd

#define WD_CONCAT_INNER(a, b) a##b
#define WD_CONCAT(a, b) WD_CONCAT_INNER(a, b)

// WD_RETURN_IF_ERROR(expr): returns the Status if expr (a Status) failed.
#define WD_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::wd::Status wd_status_ = (expr);        \
    if (!wd_status_.ok()) return wd_status_; \
  } while (0)

// WD_ASSIGN_OR_RETURN(lhs, expr): evaluates a Result, returns its Status on
// failure, else moves the value into lhs (which may be a declaration).
#define WD_ASSIGN_OR_RETURN(lhs, expr) \
  WD_ASSIGN_OR_RETURN_IMPL(WD_CONCAT(wd_result_, __LINE__), lhs, expr)
#define WD_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
