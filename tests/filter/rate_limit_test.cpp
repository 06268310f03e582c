// Rate limits: token bucket windows with a fake clock, independent keys, costs, the key cap,
// and client networks.
#include <doctest/doctest.h>

#include <string>

#include "mailroom/filter/rate_limit.hpp"

using namespace mailroom;
using filter::rate_limiter;
using namespace std::chrono_literals;

namespace {

struct fake_clock {
  rate_limiter::clock::time_point t{std::chrono::hours(1000)};
  std::function<rate_limiter::clock::time_point()> fn() {
    return [this] { return t; };
  }
};

}  // namespace

TEST_CASE("rate limit: a burst of limit, then limit per window") {
  fake_clock c;
  rate_limiter rl({3, 60s, 100, 512, c.fn()});
  auto d = rl.hit("192.0.2.1");
  CHECK(d.allowed);
  CHECK(d.remaining == 2);
  CHECK(rl.hit("192.0.2.1").allowed);
  d = rl.hit("192.0.2.1");
  CHECK(d.allowed);
  CHECK(d.remaining == 0);
  d = rl.hit("192.0.2.1");
  CHECK(!d.allowed);
  CHECK(d.retry_after == 20s);  // one token per 20 s
  // Other keys are independent.
  CHECK(rl.hit("192.0.2.2").allowed);
  CHECK(rl.size() == 2);

  c.t += 19s;
  CHECK(!rl.peek("192.0.2.1").allowed);
  CHECK(rl.peek("192.0.2.1").retry_after == 1s);
  CHECK(!rl.hit("192.0.2.1").allowed);  // refused hits take nothing
  c.t += 1s;
  CHECK(rl.peek("192.0.2.1").allowed);
  CHECK(rl.hit("192.0.2.1").allowed);
  CHECK(!rl.hit("192.0.2.1").allowed);

  // A long pause refills to the limit, never beyond.
  c.t += 1h;
  for (int i = 0; i < 3; ++i) CHECK(rl.hit("192.0.2.1").allowed);
  CHECK(!rl.hit("192.0.2.1").allowed);

  // Over a long run: at most limit per window (plus the first burst).
  int allowed = 0;
  for (int s = 0; s < 600; ++s) {
    c.t += 1s;
    if (rl.hit("steady").allowed) ++allowed;
  }
  CHECK(allowed == 3 + 29);  // the burst at the first hit, then one per 20 s over the 599 s that follow

  // reset forgets a key; peek records nothing.
  rl.reset("192.0.2.1");
  CHECK(rl.peek("192.0.2.1").remaining == 2);  // a full bucket, less the event peeked at
  CHECK(rl.peek("never").allowed);
  CHECK(rl.size() == 2);
}

TEST_CASE("rate limit: costs, a clock going backwards, odd settings") {
  fake_clock c;
  rate_limiter rl({10, 10s, 100, 512, c.fn()});
  CHECK(rl.hit("k", 7).allowed);
  auto d = rl.hit("k", 7);
  CHECK(!d.allowed);
  CHECK(d.retry_after == 4s);
  d = rl.hit("k", 11);
  CHECK(!d.allowed);
  CHECK(d.retry_after == 10s);
  c.t -= 1h;  // backwards: no tokens appear, nothing breaks
  CHECK(!rl.hit("k", 4).allowed);
  CHECK(rl.hit("k", 3).allowed);

  rate_limiter zero({0, 0ms, 0, 512, c.fn()});
  CHECK(!zero.hit("x").allowed);
  CHECK(zero.hit("x", 0).allowed);
}

TEST_CASE("rate limit: bounded keys") {
  fake_clock c;
  rate_limiter rl({1, 60s, 1000, 16, c.fn()});
  for (int i = 0; i < 100000; ++i) rl.hit("sender" + std::to_string(i) + "@example.com");
  CHECK(rl.size() == 1000);
  // The most recent keys are remembered, the oldest forgotten (full bucket again).
  CHECK(!rl.peek("sender99999@example.com").allowed);
  CHECK(rl.peek("sender0@example.com").allowed);
  // Keys are cut to max_key_length: long keys sharing a prefix share a bucket.
  rate_limiter cut({1, 60s, 10, 4, c.fn()});
  CHECK(cut.hit("abcdXXXX").allowed);
  CHECK(!cut.hit("abcdYYYY").allowed);
  CHECK(cut.hit(std::string(1 << 20, 'z')).allowed);
  CHECK(cut.size() == 2);
}

TEST_CASE("client networks") {
  using asio::ip::make_address;
  CHECK(filter::client_network(make_address("192.0.2.77")) == "192.0.2.77/32");
  CHECK(filter::client_network(make_address("192.0.2.77"), 24) == "192.0.2.0/24");
  CHECK(filter::client_network(make_address("192.0.2.77"), 20) == "192.0.0.0/20");
  CHECK(filter::client_network(make_address("192.0.2.77"), 0) == "0.0.0.0/0");
  CHECK(filter::client_network(make_address("192.0.2.77"), 99) == "192.0.2.77/32");
  CHECK(filter::client_network(make_address("::ffff:192.0.2.77"), 24) == "192.0.2.0/24");
  CHECK(filter::client_network(make_address("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2::/64");
  CHECK(filter::client_network(make_address("2001:db8:1:2:3:4:5:6"), 24, 48) == "2001:db8:1::/48");
  CHECK(filter::client_network(make_address("2001:db8:1:2:3:4:5:6"), 24, 52) == "2001:db8:1::/52");
  CHECK(filter::client_network(make_address("2001:db8:1:fff2:3:4:5:6"), 24, 52) == "2001:db8:1:f000::/52");
  CHECK(filter::client_network(make_address("2001:db8::1"), 24, 128) == "2001:db8::1/128");
}
