// Per-key rate limits (connections per client IP, messages per client IP, messages per sender,
// per authenticated user...): one rate_limiter per kind of limit, keyed by a string.
//
// Contract: a token bucket per key. A key starts with `limit` tokens; each event takes `cost`
// tokens; tokens come back continuously at `limit` per `window` up to `limit`. So a burst of
// `limit` events is allowed at once, and over a long run at most `limit` per `window` (in any
// one window at most 2 x limit: a full bucket plus its refill). A refused event takes nothing.
// An event costing more than `limit` is always refused (retry_after = window).
// Memory is bounded: at most max_keys keys (the least recently used one is forgotten, which
// gives it a full bucket again) and keys are cut to max_key_length octets. The clock is
// injectable for tests. Thread-safe (one short critical section per call), so one limiter may be
// shared by every session and thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <asio/ip/address.hpp>

namespace mailroom::filter {

namespace detail {
template <class V>
class lru_map;
}

/// The network a client address belongs to, for per-client state (rate limits, greylisting):
/// the address masked to v4_prefix or v6_prefix bits, as "192.0.2.0/24" or "2001:db8::/64".
/// An IPv4-mapped IPv6 address counts as IPv4. Prefixes over 32/128 are taken as 32/128.
std::string client_network(asio::ip::address const& ip, unsigned v4_prefix = 32, unsigned v6_prefix = 64);

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  struct options {
    std::uint32_t limit = 60;                                    ///< events per window; the burst size
    std::chrono::milliseconds window{std::chrono::minutes(1)};   ///< time to refill an empty bucket
    std::size_t max_keys = 100000;
    std::size_t max_key_length = 512;
    std::function<clock::time_point()> now;                      ///< empty: clock::now
  };

  struct decision {
    bool allowed = true;
    std::chrono::milliseconds retry_after{0};  ///< refused: when the same event would be allowed
    std::uint32_t remaining = 0;               ///< whole events left after this decision
  };

  explicit rate_limiter(options opts);
  ~rate_limiter();
  rate_limiter(rate_limiter const&) = delete;
  rate_limiter& operator=(rate_limiter const&) = delete;

  /// Records an event of `cost` for key when the bucket allows it.
  decision hit(std::string_view key, std::uint32_t cost = 1);
  /// What hit() would answer, without recording anything.
  decision peek(std::string_view key, std::uint32_t cost = 1) const;
  /// Forgets key (a full bucket again).
  void reset(std::string_view key);
  /// Keys remembered.
  std::size_t size() const;

  options const& settings() const noexcept { return opts_; }

 private:
  struct bucket {
    double tokens = 0;
    clock::time_point updated{};
    bool fresh = true;
  };
  decision decide(bucket& b, std::uint32_t cost, clock::time_point now, bool commit) const;
  clock::time_point now() const { return opts_.now ? opts_.now() : clock::now(); }
  std::string key_of(std::string_view key) const;

  options opts_;
  mutable std::mutex mutex_;
  std::unique_ptr<detail::lru_map<bucket>> buckets_;
};

}  // namespace mailroom::filter
