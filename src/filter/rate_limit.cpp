#include "mailroom/filter/rate_limit.hpp"

#include <algorithm>
#include <cmath>

#include "filter/detail/lru_map.hpp"

namespace mailroom::filter {

namespace {

template <class Bytes>
void mask(Bytes& b, unsigned prefix) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    unsigned const first_bit = static_cast<unsigned>(i) * 8;
    if (prefix >= first_bit + 8) continue;
    unsigned const keep = prefix > first_bit ? prefix - first_bit : 0;
    b[i] = static_cast<unsigned char>(b[i] & (0xff00u >> keep));
  }
}

}  // namespace

std::string client_network(asio::ip::address const& ip, unsigned v4_prefix, unsigned v6_prefix) {
  asio::ip::address addr = ip;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  if (addr.is_v4()) {
    unsigned const p = std::min(v4_prefix, 32u);
    auto b = addr.to_v4().to_bytes();
    mask(b, p);
    return asio::ip::address_v4(b).to_string() + "/" + std::to_string(p);
  }
  unsigned const p = std::min(v6_prefix, 128u);
  auto b = addr.to_v6().to_bytes();
  mask(b, p);
  return asio::ip::address_v6(b).to_string() + "/" + std::to_string(p);
}

rate_limiter::rate_limiter(options opts)
    : opts_(std::move(opts)), buckets_(std::make_unique<detail::lru_map<bucket>>(opts_.max_keys)) {
  if (opts_.window.count() <= 0) opts_.window = std::chrono::milliseconds(1);
}

rate_limiter::~rate_limiter() = default;

std::string rate_limiter::key_of(std::string_view key) const {
  return std::string(key.substr(0, opts_.max_key_length));
}

rate_limiter::decision rate_limiter::decide(bucket& b, std::uint32_t cost, clock::time_point now, bool commit) const {
  double const capacity = opts_.limit;
  double const per_ms = capacity / static_cast<double>(opts_.window.count());
  double tokens = capacity;
  if (!b.fresh) {
    double const elapsed = std::chrono::duration<double, std::milli>(now - b.updated).count();
    tokens = std::min(capacity, b.tokens + (elapsed > 0 ? elapsed * per_ms : 0.0));
  }
  decision d;
  if (cost > opts_.limit) {
    d.allowed = false;
    d.retry_after = opts_.window;
  } else if (tokens + 1e-9 >= cost) {
    tokens = std::max(0.0, tokens - cost);
  } else {
    d.allowed = false;
    d.retry_after = std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil((cost - tokens) / per_ms)));
  }
  d.remaining = static_cast<std::uint32_t>(std::floor(tokens + 1e-9));
  if (commit) {
    b.tokens = tokens;
    // A clock that went backwards must not hand out tokens later.
    if (b.fresh || now > b.updated) b.updated = now;
    b.fresh = false;
  }
  return d;
}

rate_limiter::decision rate_limiter::hit(std::string_view key, std::uint32_t cost) {
  auto const t = now();
  auto const k = key_of(key);
  std::lock_guard lock(mutex_);
  return decide(buckets_->upsert(k), cost, t, true);
}

rate_limiter::decision rate_limiter::peek(std::string_view key, std::uint32_t cost) const {
  auto const t = now();
  auto const k = key_of(key);
  std::lock_guard lock(mutex_);
  bucket b;
  if (bucket const* found = buckets_->find(k)) b = *found;
  return decide(b, cost, t, false);
}

void rate_limiter::reset(std::string_view key) {
  auto const k = key_of(key);
  std::lock_guard lock(mutex_);
  buckets_->erase(k);
}

std::size_t rate_limiter::size() const {
  std::lock_guard lock(mutex_);
  return buckets_->size();
}

}  // namespace mailroom::filter
