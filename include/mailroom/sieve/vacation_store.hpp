// Where vacation (RFC 5230 section 4.2) remembers whom it answered, per user: a key (the handle and
// the sender) and when it was answered. The interpreter asks seen() before it replies and calls
// record() when it emits a reply.
//
// Contract: seen() is true when record() was called for `key` at or after now - period.
// Keys are compared exactly (the interpreter lower-cases the sender). Implementations bound
// their memory or disk use; forgetting old entries is allowed (it can only cause an extra reply).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mailroom::sieve {

class vacation_store {
 public:
  virtual ~vacation_store() = default;
  virtual bool seen(std::string_view key, std::int64_t period_seconds, std::int64_t now) = 0;
  virtual void record(std::string_view key, std::int64_t now) = 0;
};

/// In memory; at most max_entries keys (the oldest are dropped first).
class memory_vacation_store final : public vacation_store {
 public:
  explicit memory_vacation_store(std::size_t max_entries = 10000) : max_(max_entries) {}
  bool seen(std::string_view key, std::int64_t period_seconds, std::int64_t now) override;
  void record(std::string_view key, std::int64_t now) override;
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  std::size_t max_;
  std::unordered_map<std::string, std::int64_t> entries_;
};

/// One small file per user: a line "<time> <64-bit hash of key, hex>" appended per record().
/// When the file grows past max_bytes it is rewritten with the newest line per key, dropping
/// entries older than max_age (and the oldest half if that is not enough); the rewrite goes
/// through a temporary file and rename. I/O errors make seen() false and record() a no-op (an
/// extra reply is better than a lost message).
class file_vacation_store final : public vacation_store {
 public:
  explicit file_vacation_store(std::filesystem::path file, std::size_t max_bytes = 64 * 1024,
                               std::int64_t max_age_seconds = 365LL * 86400)
      : file_(std::move(file)), max_bytes_(max_bytes), max_age_(max_age_seconds) {}
  bool seen(std::string_view key, std::int64_t period_seconds, std::int64_t now) override;
  void record(std::string_view key, std::int64_t now) override;

 private:
  /// The file's entries, read again only when its size or time changed (another process).
  std::map<std::uint64_t, std::int64_t> const& entries();

  std::filesystem::path file_;
  std::size_t max_bytes_;
  std::int64_t max_age_;
  std::map<std::uint64_t, std::int64_t> entries_;
  std::uintmax_t seen_size_ = static_cast<std::uintmax_t>(-1);
  std::filesystem::file_time_type seen_time_{};
};

}  // namespace mailroom::sieve
