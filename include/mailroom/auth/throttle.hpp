// Per-client-IP authentication failure tracking: each failure from an address makes the next
// answer to it slower (base, 2×base, 4×base, ... up to max_delay), a success clears it, and an
// address forgotten after `forget_after` starts again. Shared by every listener and thread of a
// server (thread-safe); memory is bounded by max_entries (the stalest entries go first).
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <unordered_map>

#include <asio/ip/address.hpp>

namespace mailroom::auth {

class throttle {
 public:
  struct options {
    std::chrono::milliseconds base_delay{std::chrono::seconds(1)};
    std::chrono::milliseconds max_delay{std::chrono::seconds(15)};
    std::chrono::seconds forget_after{std::chrono::minutes(10)};
    std::size_t max_entries = 100000;
  };
  using clock = std::chrono::steady_clock;

  throttle();
  explicit throttle(options opts);

  /// Records a failure from addr and returns how long to wait before answering it.
  std::chrono::milliseconds failure(asio::ip::address const& addr, clock::time_point now = clock::now());
  /// Forgets addr's failures.
  void success(asio::ip::address const& addr);
  /// Failures currently remembered for addr.
  unsigned failures(asio::ip::address const& addr, clock::time_point now = clock::now()) const;
  std::size_t size() const;

 private:
  struct entry {
    unsigned failures = 0;
    clock::time_point last;
    std::list<asio::ip::address>::iterator age;  // position in lru_
  };
  struct hash {
    std::size_t operator()(asio::ip::address const& a) const noexcept;
  };

  options opts_;
  mutable std::mutex mutex_;
  std::unordered_map<asio::ip::address, entry, hash> entries_;
  std::list<asio::ip::address> lru_;  // most recently failed at the front
};

}  // namespace mailroom::auth
