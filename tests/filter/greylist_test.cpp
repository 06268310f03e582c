// Greylisting: state transitions with a fake clock, masking, expiry, the auto-whitelist, the
// entry cap, and persistence across a restart (torn and malformed lines, compaction).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "mailroom/filter/greylist.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using filter::greylist;
using asio::ip::make_address;
using namespace std::chrono_literals;

namespace {

struct fake_clock {
  greylist::clock::time_point t{std::chrono::seconds(1'700'000'000)};
  std::function<greylist::clock::time_point()> fn() {
    return [this] { return t; };
  }
};

std::unique_ptr<greylist> open(greylist::options o) {
  auto g = greylist::open(std::move(o));
  REQUIRE(g);
  return std::move(*g);
}

// Options with the fake clock and an auto-whitelist threshold (0: none).
greylist::options with_clock(fake_clock& c, unsigned whitelist_after) {
  greylist::options o;
  o.now = c.fn();
  o.auto_whitelist_after = whitelist_after;
  return o;
}

std::size_t count_lines(std::string const& s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("greylist: first attempt, early retry, retry in time, known triplet") {
  fake_clock c;
  auto o = with_clock(c, 0);
  auto g = open(o);
  auto const ip = make_address("192.0.2.10");

  auto d = g->check(ip, "Alice@Example.com", "bob@example.org");
  CHECK(d.act == greylist::action::tempfail);
  CHECK(d.why == greylist::reason::new_triplet);
  CHECK(d.retry_after == 300s);
  auto r = d.reply();
  CHECK(r.code == 451);
  CHECK(r.enhanced == std::array<std::uint8_t, 3>{4, 7, 1});
  CHECK(r.text == "Greylisted, please try again in 300 seconds");

  c.t += 100s;
  d = g->check(ip, "alice@example.com", "BOB@example.org");  // case does not matter
  CHECK(d.act == greylist::action::tempfail);
  CHECK(d.why == greylist::reason::too_early);
  CHECK(d.retry_after == 200s);  // an early retry does not restart the delay

  c.t += 200s;
  d = g->check(make_address("192.0.2.200"), "alice@example.com", "bob@example.org");  // same /24
  CHECK(d.act == greylist::action::pass);
  CHECK(d.why == greylist::reason::promoted);
  CHECK(d.reply().code == 250);
  d = g->check(ip, "alice@example.com", "bob@example.org");
  CHECK(d.why == greylist::reason::known);

  // Another recipient, another network, the null sender: new triplets.
  CHECK(g->check(ip, "alice@example.com", "carol@example.org").why == greylist::reason::new_triplet);
  CHECK(g->check(make_address("192.0.3.10"), "alice@example.com", "bob@example.org").why == greylist::reason::new_triplet);
  CHECK(g->check(ip, "", "bob@example.org").why == greylist::reason::new_triplet);
  // IPv6 clients are taken by /64.
  CHECK(g->check(make_address("2001:db8::1"), "a@x", "b@y").why == greylist::reason::new_triplet);
  c.t += 300s;
  CHECK(g->check(make_address("2001:db8::ffff:2"), "a@x", "b@y").why == greylist::reason::promoted);
  CHECK(g->check(make_address("2001:db8:0:1::1"), "a@x", "b@y").why == greylist::reason::new_triplet);
  CHECK(g->size() == 6);
}

TEST_CASE("greylist: retry window and max age") {
  fake_clock c;
  auto o = with_clock(c, 0);
  auto g = open(o);
  auto const ip = make_address("198.51.100.1");

  CHECK(g->check(ip, "a@x", "b@y").why == greylist::reason::new_triplet);
  c.t += 25h;  // too late: starts over
  CHECK(g->check(ip, "a@x", "b@y").why == greylist::reason::new_triplet);
  c.t += 23h;  // 23 h after the new first attempt: within the window
  CHECK(g->check(ip, "a@x", "b@y").why == greylist::reason::promoted);

  // Promoted: lives 36 days after its last use, refreshed by each use.
  c.t += std::chrono::hours(24 * 30);
  CHECK(g->check(ip, "a@x", "b@y").why == greylist::reason::known);
  c.t += std::chrono::hours(24 * 30);
  CHECK(g->check(ip, "a@x", "b@y").why == greylist::reason::known);
  c.t += std::chrono::hours(24 * 37);
  CHECK(g->check(ip, "a@x", "b@y").why == greylist::reason::new_triplet);
}

TEST_CASE("greylist: auto-whitelist of clients that passed N times") {
  fake_clock c;
  auto o = with_clock(c, 2);
  auto g = open(o);
  auto const ip = make_address("203.0.113.5");
  g->check(ip, "a@x", "1@y");
  c.t += 5min;
  CHECK(g->check(ip, "a@x", "1@y").why == greylist::reason::promoted);  // pass 1
  CHECK(g->check(ip, "b@x", "2@y").why == greylist::reason::new_triplet);
  CHECK(g->check(ip, "a@x", "1@y").why == greylist::reason::known);  // pass 2
  CHECK(g->clients() == 1);
  auto d = g->check(make_address("203.0.113.77"), "c@x", "3@y");  // same /24, unknown triplet
  CHECK(d.act == greylist::action::pass);
  CHECK(d.why == greylist::reason::whitelisted);
  CHECK(g->check(make_address("203.0.114.5"), "c@x", "3@y").why == greylist::reason::new_triplet);
  // The whitelist expires max_age after the client's last pass.
  c.t += std::chrono::hours(24 * 37);
  CHECK(g->check(ip, "c@x", "3@y").why == greylist::reason::new_triplet);
}

TEST_CASE("greylist: bounded entries") {
  fake_clock c;
  auto o = with_clock(c, 1000);
  o.max_entries = 100;
  o.max_clients = 10;
  auto g = open(o);
  for (int i = 0; i < 100000; ++i) g->check(make_address("192.0.2.1"), "s" + std::to_string(i) + "@x", "r@y");
  CHECK(g->size() == 100);
  // The newest are kept.
  c.t += 5min;
  CHECK(g->check(make_address("192.0.2.1"), "s99999@x", "r@y").why == greylist::reason::promoted);
  CHECK(g->check(make_address("192.0.2.1"), "s0@x", "r@y").why == greylist::reason::new_triplet);
  // Client networks too.
  for (int i = 0; i < 50; ++i) {
    auto ip = make_address("10.0." + std::to_string(i) + ".1");
    g->check(ip, "a@x", "b@y");
    c.t += 5min;
    g->check(ip, "a@x", "b@y");
  }
  CHECK(g->clients() == 10);
  // Huge addresses are cut.
  std::string huge(1 << 20, 'q');
  CHECK(g->check(make_address("192.0.2.1"), huge, huge).why == greylist::reason::new_triplet);
  CHECK(g->check(make_address("192.0.2.1"), huge + "different tail", huge).why == greylist::reason::too_early);
}

TEST_CASE("greylist: state survives a restart; torn and malformed lines are skipped") {
  testing::temp_dir dir;
  fake_clock c;
  auto o = with_clock(c, 2);
  o.path = dir.path() + "/greylist.state";
  auto const ip = make_address("192.0.2.10");
  auto const ip2 = make_address("192.0.3.10");  // pending and fresh triplets, never whitelisted here
  {
    auto g = open(o);
    CHECK(g->skipped_lines() == 0);
    g->check(ip, "Odd Sender%20x@example.com", "bob@example.org");  // spaces and % survive the file
    g->check(ip2, "pending@example.com", "bob@example.org");
    c.t += 5min;
    CHECK(g->check(ip, "odd sender%20x@example.com", "bob@example.org").why == greylist::reason::promoted);
    g->check(make_address("198.51.100.1"), "a@x", "b@y");
    g->check(make_address("198.51.100.1"), "a@x", "c@y");
    c.t += 5min;
    g->check(make_address("198.51.100.1"), "a@x", "b@y");
    g->check(make_address("198.51.100.1"), "a@x", "c@y");  // second pass: whitelisted
    CHECK(!g->last_error());
  }
  std::string state = testing::read_file(o.path);
  CHECK(state.find("odd%20sender%2520x@example.com") != std::string::npos);
  // A crash in the middle of a line, and some garbage.
  testing::write_file(o.path, state + "T 1 2 x bad\nC notanumber 5 1.2.3.0/24\n" + std::string(100000, 'z') + "\nT 1700000000 17000");

  c.t += 1min;
  {
    auto g = open(o);
    CHECK(g->skipped_lines() == 4);
    CHECK(g->size() == 4);
    CHECK(g->clients() == 2);
    CHECK(g->check(ip, "odd sender%20x@example.com", "bob@example.org").why == greylist::reason::known);
    // The pending triplet kept its first attempt: 6 minutes ago, past the delay.
    CHECK(g->check(ip2, "pending@example.com", "bob@example.org").why == greylist::reason::promoted);
    CHECK(g->check(make_address("198.51.100.9"), "new@x", "b@y").why == greylist::reason::whitelisted);
    CHECK(g->check(ip2, "fresh@example.com", "bob@example.org").why == greylist::reason::new_triplet);
  }
  // The torn line is gone after the load's compaction; a third start sees a clean file.
  std::string compacted = testing::read_file(o.path);
  CHECK(compacted.starts_with("# mailroom greylist 1\n"));
  CHECK(compacted.back() == '\n');
  {
    auto g = open(o);
    CHECK(g->skipped_lines() == 0);
    CHECK(g->size() == 5);
    CHECK(g->check(ip2, "fresh@example.com", "bob@example.org").why == greylist::reason::too_early);
  }
  // Expired entries are dropped at load.
  c.t += std::chrono::hours(24 * 40);
  {
    auto g = open(o);
    CHECK(g->size() == 0);
    CHECK(g->clients() == 0);
  }
  CHECK(count_lines(testing::read_file(o.path)) == 1);
}

TEST_CASE("greylist: the file is compacted as it grows; open fails on an unreadable path") {
  testing::temp_dir dir;
  fake_clock c;
  auto o = with_clock(c, 0);
  o.path = dir.path() + "/gl";
  o.compact_min_lines = 20;
  o.max_entries = 5;
  auto g = open(o);
  for (int i = 0; i < 1000; ++i) {
    g->check(make_address("192.0.2.1"), "s" + std::to_string(i) + "@x", "r@y");
    CHECK(count_lines(testing::read_file(o.path)) <= 21);
  }
  CHECK(g->size() == 5);
  CHECK(!g->last_error());

  greylist::options bad = o;
  bad.path = dir.path();  // a directory: cannot be read as a file
  CHECK(!greylist::open(bad));
  bad.path = dir.path() + "/missing/dir/gl";
  CHECK(!greylist::open(bad));
}

TEST_CASE("greylist: a failing file does not stop greylisting") {
  testing::temp_dir dir;
  fake_clock c;
  auto o = with_clock(c, 0);
  std::filesystem::create_directory(dir.path() + "/sub");
  o.path = dir.path() + "/sub/gl";
  o.compact_min_lines = 5;
  o.max_entries = 3;  // so the log soon holds more than twice the live entries
  auto g = open(o);
  std::filesystem::remove_all(dir.path() + "/sub");  // compaction can no longer write its file
  auto const ip = make_address("192.0.2.1");
  for (int i = 0; i < 20; ++i) CHECK(g->check(ip, "s" + std::to_string(i) + "@x", "r@y").why == greylist::reason::new_triplet);
  CHECK(g->last_error() == std::errc::no_such_file_or_directory);
  c.t += 5min;
  CHECK(g->check(ip, "s19@x", "r@y").why == greylist::reason::promoted);
  CHECK(g->size() == 3);
}
