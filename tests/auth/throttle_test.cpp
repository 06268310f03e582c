#include <doctest/doctest.h>

#include "mailroom/auth/throttle.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

TEST_CASE("delays double per failure from one address, up to the cap") {
  auth::throttle::options o;
  o.base_delay = 100ms;
  o.max_delay = 1000ms;
  auth::throttle t(o);
  auto a = asio::ip::make_address("192.0.2.1");
  auto b = asio::ip::make_address("2001:db8::1");
  auto now = auth::throttle::clock::now();
  CHECK(t.failure(a, now) == 100ms);
  CHECK(t.failure(a, now) == 200ms);
  CHECK(t.failure(a, now) == 400ms);
  CHECK(t.failure(a, now) == 800ms);
  CHECK(t.failure(a, now) == 1000ms);
  for (int i = 0; i < 100; ++i) CHECK(t.failure(a, now) <= 1000ms);  // no overflow
  CHECK(t.failure(b, now) == 100ms);  // other addresses are not affected
  t.success(a);
  CHECK(t.failures(a, now) == 0);
  CHECK(t.failure(a, now) == 100ms);
}

TEST_CASE("failures are forgotten after a quiet period") {
  auth::throttle::options o;
  o.base_delay = 100ms;
  o.forget_after = 60s;
  auth::throttle t(o);
  auto a = asio::ip::make_address("192.0.2.7");
  auto now = auth::throttle::clock::now();
  (void)t.failure(a, now);
  (void)t.failure(a, now);
  CHECK(t.failures(a, now + 30s) == 2);
  CHECK(t.failures(a, now + 61s) == 0);
  CHECK(t.failure(a, now + 61s) == 100ms);
}

TEST_CASE("memory is bounded: the stalest addresses are dropped") {
  auth::throttle::options o;
  o.max_entries = 100;
  auth::throttle t(o);
  auto now = auth::throttle::clock::now();
  for (std::uint32_t i = 0; i < 10000; ++i) (void)t.failure(asio::ip::address_v4(0x0a000000u + i), now);
  CHECK(t.size() == 100);
  CHECK(t.failures(asio::ip::address_v4(0x0a000000u + 9999), now) == 1);
  CHECK(t.failures(asio::ip::address_v4(0x0a000000u), now) == 0);
}
