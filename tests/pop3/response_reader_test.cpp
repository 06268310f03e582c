// The sans-I/O POP3 response reader: status lines, listings, message content, limits.
#include <doctest/doctest.h>

#include <ostream>
#include <string>

#include "mailroom/pop3/response_reader.hpp"

using namespace mailroom;
using pop3::response_reader;
using pop3::status;

namespace {

// Feeds `in` one octet at a time and reads the message (the hardest split for the state machine).
result<std::string> message_bytewise(std::string_view in, std::size_t max = 1 << 20) {
  response_reader r(64);
  std::string out;
  for (char c : in) {
    r.feed(std::string_view(&c, 1));
    auto done = r.read_message(out, max);
    if (!done) return fail(done.error());
    if (*done) return out;
  }
  return fail(pop3::errc::protocol_error);  // never ended
}

}  // namespace

TEST_CASE("response_reader: status lines") {
  response_reader r(32);
  r.feed("+OK hello there\r\n-ERR [AUTH] no\r\n+OK\r\n+ AAAA\r\n+\n-ERR");
  auto a = r.next_status();
  REQUIRE(a);
  REQUIRE(*a);
  CHECK((*a)->k == status::kind::ok);
  CHECK((*a)->text == "hello there");
  CHECK((*a)->line == "+OK hello there");
  auto b = r.next_status().value().value();
  CHECK(b.k == status::kind::err);
  CHECK(b.text == "[AUTH] no");
  auto c = r.next_status().value().value();
  CHECK(c.k == status::kind::ok);
  CHECK(c.text.empty());
  auto d = r.next_status().value().value();
  CHECK(d.k == status::kind::continuation);
  CHECK(d.text == "AAAA");
  auto e = r.next_status().value().value();
  CHECK(e.k == status::kind::continuation);
  auto f = r.next_status();
  REQUIRE(f);
  CHECK(!*f);  // "-ERR" without its line end yet: need more
  r.feed("\r\n");
  CHECK(r.next_status().value().value().k == status::kind::err);
}

TEST_CASE("response_reader: garbage and overlong lines are final errors") {
  for (std::string bad : {"HTTP/1.1 400 Bad\r\n", "+OKAY\r\n", "-ERROR\r\n", "ok\r\n", "\r\n", "* OK imap\r\n"}) {
    CAPTURE(bad);
    response_reader r(32);
    r.feed(bad);
    auto s = r.next_status();
    REQUIRE(!s);
    CHECK(s.error() == pop3::errc::malformed_response);
    r.feed("+OK\r\n");
    CHECK(!r.next_status());  // errors stick
  }
  response_reader r(32);
  r.feed("+OK " + std::string(28, 'x'));  // 32 octets: may still be a line
  CHECK(r.next_status().value() == std::nullopt);
  r.feed("\r");
  CHECK(r.next_status().value() == std::nullopt);
  r.feed("y");  // 33 octets, no line end: over the limit without waiting for the rest
  auto s = r.next_status();
  REQUIRE(!s);
  CHECK(s.error() == pop3::errc::line_too_long);
  response_reader r2(32);
  r2.feed("+OK " + std::string(29, 'x') + "\r\n");
  CHECK(r2.next_status().error() == pop3::errc::line_too_long);
  response_reader r3(32);
  r3.feed("1 " + std::string(40, '9'));
  CHECK(r3.next_line().error() == pop3::errc::line_too_long);
}

TEST_CASE("response_reader: listing lines are dot-unstuffed and end at a lone dot") {
  response_reader r(64);
  r.feed("1 abc\r\n..2 weird\r\n3 x\n.\r\n+OK next\r\n");
  CHECK(r.next_line().value().value().text == "1 abc");
  CHECK(r.next_line().value().value().text == ".2 weird");
  CHECK(r.next_line().value().value().text == "3 x");
  CHECK(r.next_line().value().value().end);
  CHECK(r.next_status().value().value().text == "next");
}

TEST_CASE("response_reader: message content, whatever the split") {
  std::string const wire = "Subject: x\r\n\r\n..dot\r\n...two\r\n.\r\n";
  CHECK(message_bytewise(wire).value() == "Subject: x\r\n\r\n.dot\r\n..two\r\n");
  // Bare LF becomes CRLF; a bare CR stays; ".\n" ends too.
  CHECK(message_bytewise("a\nb\rc\r\n.x\n.\n").value() == "a\r\nb\rc\r\nx\r\n");
  // A dot followed by CR and not LF: stuffing, and a bare CR.
  CHECK(message_bytewise("a\r\n.\rb\r\n.\r\n").value() == "a\r\n\rb\r\n");
  CHECK(message_bytewise(".\r\n").value().empty());
  // The terminator only at the start of a line.
  CHECK(message_bytewise("x.\r\n.\r\n").value() == "x.\r\n");

  // In one piece, with the next response behind it.
  response_reader r(64);
  r.feed("l1\r\n..\r\n.\r\n+OK after\r\n");
  std::string out;
  CHECK(r.read_message(out, 100).value());
  CHECK(out == "l1\r\n.\r\n");
  CHECK(r.next_status().value().value().text == "after");
}

TEST_CASE("response_reader: a message never grows past max_size") {
  std::string const body = "0123456789\r\n0123456789\r\n.\r\n";
  CHECK(message_bytewise(body, 24).value().size() == 24);  // exactly at the limit is fine
  auto r = message_bytewise(body, 23);
  REQUIRE(!r);
  CHECK(r.error() == pop3::errc::too_large);

  response_reader big(64);
  std::string out;
  std::string const chunk(4096, 'a');
  bool failed = false;
  for (int i = 0; i < 100 && !failed; ++i) {
    big.feed(chunk);
    auto d = big.read_message(out, 10000);
    if (!d) {
      CHECK(d.error() == pop3::errc::too_large);
      failed = true;
    }
    CHECK(out.size() <= 10000);
    CHECK(big.buffered() <= chunk.size());
  }
  CHECK(failed);
}
