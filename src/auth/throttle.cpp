#include "mailroom/auth/throttle.hpp"

#include <algorithm>
#include <functional>
#include <string_view>

namespace mailroom::auth {

std::size_t throttle::hash::operator()(asio::ip::address const& a) const noexcept {
  if (a.is_v4()) return std::hash<std::uint32_t>{}(a.to_v4().to_uint());
  auto bytes = a.to_v6().to_bytes();
  return std::hash<std::string_view>{}(std::string_view(reinterpret_cast<char const*>(bytes.data()), bytes.size()));
}

throttle::throttle() : throttle(options{}) {}
throttle::throttle(options opts) : opts_(opts) {}

std::chrono::milliseconds throttle::failure(asio::ip::address const& addr, clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(addr);
  if (it == entries_.end()) {
    if (entries_.size() >= opts_.max_entries && !lru_.empty()) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(addr);
    it = entries_.emplace(addr, entry{0, now, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.age);
    if (now - it->second.last > opts_.forget_after) it->second.failures = 0;
  }
  auto& e = it->second;
  e.failures = std::min(e.failures + 1, 64u);
  e.last = now;
  // base × 2^(failures-1), without overflow, capped.
  auto delay = opts_.base_delay;
  for (unsigned i = 1; i < e.failures && delay < opts_.max_delay; ++i) delay *= 2;
  return std::min(delay, opts_.max_delay);
}

void throttle::success(asio::ip::address const& addr) {
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(addr); it != entries_.end()) {
    lru_.erase(it->second.age);
    entries_.erase(it);
  }
}

unsigned throttle::failures(asio::ip::address const& addr, clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(addr);
  if (it == entries_.end() || now - it->second.last > opts_.forget_after) return 0;
  return it->second.failures;
}

std::size_t throttle::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace mailroom::auth
