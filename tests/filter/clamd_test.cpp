// The clamd client: the reply parser and its interpretation, then INSTREAM against scripted
// servers (chunking, verdicts, size limits on both sides, hostile replies, deadlines).
#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <vector>

#include "filter/scan_fake.hpp"
#include "mailroom/filter/clamd.hpp"
#include "mailroom/net/error.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;
using namespace mailroom::filter;
using namespace std::chrono_literals;

namespace {

std::uint32_t get_length(std::string const& s, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

/// Parses an INSTREAM request: true once its zero-length chunk arrived. The payload and the
/// chunk lengths are reassembled from what arrived so far.
bool parse_instream(std::string const& req, std::string* payload = nullptr, std::vector<std::uint32_t>* lengths = nullptr) {
  std::string const cmd("zINSTREAM\0", 10);
  if (req.compare(0, cmd.size(), cmd) != 0) return false;
  std::size_t pos = cmd.size();
  if (payload) payload->clear();
  if (lengths) lengths->clear();
  while (req.size() - pos >= 4) {
    auto n = get_length(req, pos);
    if (lengths) lengths->push_back(n);
    if (n == 0) return true;
    auto avail = std::min<std::size_t>(n, req.size() - pos - 4);
    if (payload) payload->append(req, pos + 4, avail);
    if (avail < n) return false;
    pos += 4 + n;
  }
  return false;
}

std::string z(std::string_view s) { return std::string(s) + std::string(1, '\0'); }

log::logger quiet() { return log::logger(std::make_shared<log::null_sink>(), log::level::off); }

/// A scripted clamd that answers `reply` once a whole INSTREAM request arrived (change `f`
/// before calling scan() to script it otherwise), and the options to reach it.
struct scripted {
  asio::io_context io;
  testing::fake_scanner f;
  clamd_options o;

  explicit scripted(std::vector<std::string> reply, bool unix_socket = false) : f(io, unix_socket) {
    f.complete = [](std::string const& r) { return parse_instream(r); };
    f.reply = std::move(reply);
    o.address = f.address();
    o.deadlines = {2s, 2s, 5s};
  }

  result<clamd_verdict> scan(std::string const& message) {
    f.start();
    clamd_client c(io.get_executor(), o, quiet());
    return testing::run(io, c.scan(std::string_view(message)));
  }
  template <class T>
  T run(task<T> (clamd_client::*op)()) {
    f.start();
    clamd_client c(io.get_executor(), o, quiet());
    return testing::run(io, (c.*op)());
  }
};

}  // namespace

TEST_CASE("clamd replies: NUL or LF terminated, in pieces, bounded") {
  clamd_reply_parser p(32);
  p.feed(std::string("stream: OK\0stream: X FOUND\r\nPO", 30));
  auto a = p.next();
  REQUIRE(a);
  REQUIRE(*a);
  CHECK(**a == "stream: OK");
  auto b = p.next();
  REQUIRE(b);
  REQUIRE(*b);
  CHECK(**b == "stream: X FOUND");
  auto c = p.next();
  REQUIRE(c);
  CHECK(!*c);
  CHECK(p.buffered() == 2);
  p.feed("NG");
  p.feed(std::string_view("\0", 1));
  auto d = p.next();
  REQUIRE(d);
  REQUIRE(*d);
  CHECK(**d == "PONG");

  // An overlong reply is refused before its terminator arrives, and the error sticks.
  clamd_reply_parser q(16);
  q.feed(std::string(17, 'x'));
  CHECK(q.next());  // 17 octets may still be 16 plus a CR
  q.feed("y");
  auto e = q.next();
  REQUIRE(!e);
  CHECK(e.error() == scan_errc::reply_too_large);
  q.feed(std::string_view("\0", 1));
  CHECK(q.next().error() == scan_errc::reply_too_large);

  // Exactly the limit is fine, byte at a time.
  clamd_reply_parser r(16);
  std::string const in = std::string(16, 'a') + "\r\n";
  std::optional<std::string> got;
  for (char ch : in) {
    r.feed(std::string_view(&ch, 1));
    auto x = r.next();
    REQUIRE(x);
    if (*x) got = **x;
  }
  CHECK(got == std::string(16, 'a'));
}

TEST_CASE("clamd INSTREAM verdicts") {
  auto ok = interpret_scan_reply("stream: OK");
  REQUIRE(ok);
  CHECK(!ok->infected);
  CHECK(ok->signature.empty());

  auto found = interpret_scan_reply("stream: Win.Test.EICAR_HDB-1 FOUND");
  REQUIRE(found);
  CHECK(found->infected);
  CHECK(found->signature == "Win.Test.EICAR_HDB-1");
  auto ext = interpret_scan_reply("stream: Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68) FOUND");
  REQUIRE(ext);
  CHECK(ext->signature == "Eicar-Signature(44d88612fea8a8f36de82e1278abb02f:68)");

  CHECK(interpret_scan_reply("INSTREAM size limit exceeded. ERROR").error() == scan_errc::size_limit_exceeded);
  CHECK(interpret_scan_reply("stream: Can't allocate memory ERROR").error() == scan_errc::scanner_error);
  for (std::string_view bad : {"", "OK", "stream:OK", "stream: ", "stream: FOUND", "stream:  FOUND", "PONG",
                               "stream: OK FOUNDx", "UNKNOWN COMMAND", "stream: a\tb FOUND"})
    CHECK_MESSAGE(interpret_scan_reply(bad).error() == scan_errc::malformed_reply, bad);
}

TEST_CASE("clamd client: a clean message is streamed in chunks and the verdict returned") {
  scripted s({z("stream: OK")});
  s.o.chunk_size = 10;
  std::string message;
  for (int i = 0; i < 150; ++i) message += static_cast<char>(i % 7 == 6 ? '\n' : 'a' + i % 26);
  // A source that hands out 7 octets at a time: chunks still come out 10 octets each.
  testing::string_source src(message);
  s.f.start();
  clamd_client c(s.io.get_executor(), s.o, quiet());
  auto v = testing::run(s.io, c.scan(src));
  REQUIRE(v);
  CHECK(!v->infected);
  CHECK(!v->truncated);
  std::string payload;
  std::vector<std::uint32_t> lengths;
  REQUIRE(parse_instream(s.f.received, &payload, &lengths));
  CHECK(payload == message);
  REQUIRE(lengths.size() == 16);
  for (std::size_t i = 0; i < 15; ++i) CHECK(lengths[i] == 10);
  CHECK(lengths[15] == 0);
  CHECK(s.f.received.size() == 10 + 15 * 14 + 4);  // nothing after the terminator
}

TEST_CASE("clamd client: a virus over a unix socket; a reply in pieces") {
  scripted s({"stream: Eicar-", "Signature FO", z("UND")}, true);
  s.f.pause = 20ms;
  CHECK(s.o.address.to_string().starts_with("unix:/"));
  auto v = s.scan("X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR");
  REQUIRE(v);
  CHECK(v->infected);
  CHECK(v->signature == "Eicar-Signature");
}

TEST_CASE("clamd client: an empty message is one terminator") {
  scripted s({z("stream: OK")});
  REQUIRE(s.scan(""));
  CHECK(s.f.received == std::string("zINSTREAM\0\0\0\0\0", 14));
}

TEST_CASE("clamd client: clamd's size limit, answered while the client still sends") {
  scripted s({z("INSTREAM size limit exceeded. ERROR")});
  // As clamd: once more than 1000 octets arrived, say so and close without reading the rest.
  s.f.complete = [](std::string const& r) {
    std::string payload;
    return parse_instream(r, &payload) || payload.size() > 1000;
  };
  s.o.chunk_size = 512;
  auto v = s.scan(std::string(4 << 20, 'a'));  // far more than the socket buffers hold
  REQUIRE(!v);
  CHECK(v.error() == scan_errc::size_limit_exceeded);
}

TEST_CASE("clamd client: the caller's max_size, refused or scanned as a prefix") {
  scripted s({z("stream: OK")});
  s.o.max_size = 100;
  s.o.chunk_size = 30;
  SUBCASE("fail, known before connecting") {
    CHECK(s.scan(std::string(101, 'b')).error() == scan_errc::message_too_large);
    CHECK(s.f.received.empty());
  }
  SUBCASE("fail, found while streaming: nothing past max_size is sent") {
    testing::string_source src(std::string(101, 'b'));
    s.f.start();
    clamd_client c(s.io.get_executor(), s.o, quiet());
    auto v = testing::run(s.io, c.scan(src));
    REQUIRE(!v);
    CHECK(v.error() == scan_errc::message_too_large);
    testing::run(s.io, [&]() -> task<void> {  // let the server see the connection close
      asio::steady_timer t(s.io, 50ms);
      co_await t.async_wait(asio::use_awaitable);
    }());
    std::string payload;
    CHECK(!parse_instream(s.f.received, &payload));
    CHECK(payload.size() == 90);  // three whole chunks of 30; the fourth would cross the limit
  }
  SUBCASE("exactly max_size is scanned") {
    auto v = s.scan(std::string(100, 'b'));
    REQUIRE(v);
    CHECK(!v->truncated);
  }
  SUBCASE("scan_prefix") {
    s.o.on_oversize = clamd_options::oversize::scan_prefix;
    std::string message;
    for (int i = 0; i < 300; ++i) message += static_cast<char>('a' + i % 26);
    auto v = s.scan(message);
    REQUIRE(v);
    CHECK(v->truncated);
    std::string payload;
    REQUIRE(parse_instream(s.f.received, &payload));
    CHECK(payload == message.substr(0, 100));
  }
}

TEST_CASE("clamd client: hostile and broken servers") {
  struct hostile {
    char const* name;
    std::vector<std::string> reply;
    std::error_code expected;
  };
  std::vector<hostile> cases = {
      {"garbage", {z("HTTP/1.1 400 Bad Request")}, make_error_code(scan_errc::malformed_reply)},
      {"binary", {std::string("\x01\x02\xff\0", 4)}, make_error_code(scan_errc::malformed_reply)},
      {"overlong", {std::string(100'000, 'A')}, make_error_code(scan_errc::reply_too_large)},
      {"EOF mid-reply", {"stream: O"}, make_error_code(net::errc::eof)},
      {"EOF at once", {}, make_error_code(net::errc::eof)},
      {"other error", {z("stream: lstat() failed ERROR")}, make_error_code(scan_errc::scanner_error)},
  };
  for (auto const& h : cases) {
    CAPTURE(h.name);
    scripted s(h.reply);
    auto v = s.scan("hello\r\n");
    REQUIRE(!v);
    CHECK(v.error() == h.expected);
  }
}

TEST_CASE("clamd client: deadlines") {
  SUBCASE("silence: the read deadline") {
    scripted s({});
    s.f.silent = true;
    s.o.deadlines = {1s, 200ms, 10s};
    auto t0 = std::chrono::steady_clock::now();
    auto v = s.scan("hello");
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(!v);
    CHECK(v.error() == net::errc::timeout);
    CHECK(took >= 190ms);
    CHECK(took < 3s);
  }
  SUBCASE("a trickle: the whole exchange's deadline") {
    scripted s({});
    for (char c : std::string("stream: OK")) s.f.reply.emplace_back(1, c);
    s.f.reply.emplace_back(1, '\0');
    s.f.pause = 60ms;  // each read is quick, the whole reply takes 660 ms
    s.o.deadlines = {1s, 200ms, 300ms};
    auto v = s.scan("hello");  // without the whole-exchange deadline this would succeed
    REQUIRE(!v);
    CHECK(v.error() == net::errc::timeout);
  }
  SUBCASE("nobody listening") {
    asio::io_context io;
    clamd_options o;
    {
      testing::fake_scanner f(io);  // take a port, then free it
      o.address = f.address();
    }
    o.deadlines = {1s, 1s, 1s};
    clamd_client c(io.get_executor(), o, quiet());
    auto v = testing::run(io, c.scan(std::string_view("hello")));
    REQUIRE(!v);
    CHECK(v.error() == asio::error::connection_refused);
  }
}

TEST_CASE("clamd client: PING and VERSION") {
  {
    scripted s({z("PONG")});
    s.f.complete = [](std::string const& r) { return r == std::string("zPING\0", 6); };
    CHECK(s.run(&clamd_client::ping));
  }
  {
    scripted s({z("PANG")});
    s.f.complete = [](std::string const&) { return true; };
    CHECK(s.run(&clamd_client::ping).error() == scan_errc::malformed_reply);
  }
  {
    scripted s({z("ClamAV 1.4.3/27480/Tue Dec  1 09:38:18 2026")});
    s.f.complete = [](std::string const& r) { return r == std::string("zVERSION\0", 9); };
    auto v = s.run(&clamd_client::version);
    REQUIRE(v);
    CHECK(*v == "ClamAV 1.4.3/27480/Tue Dec  1 09:38:18 2026");
  }
}
