// The sans-I/O reply reader: syntax, enhanced codes, limits, and byte-at-a-time input.
#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <vector>

#include "mailroom/smtp/error.hpp"
#include "mailroom/smtp/reply_parser.hpp"

using namespace mailroom;
using smtp::reply;
using smtp::reply_parser;

namespace {

// Everything the parser makes of `in`, fed whole: the replies, and the error if one ended it.
struct parsed {
  std::vector<reply> replies;
  std::error_code error;
  bool need_more = false;
};

parsed parse_all(std::string_view in, smtp::reply_limits limits = {}, bool byte_at_a_time = false) {
  reply_parser p(limits);
  parsed out;
  auto drain = [&] {
    for (;;) {
      auto r = p.next();
      if (!r) {
        out.error = r.error();
        return false;
      }
      if (!*r) return true;
      out.replies.push_back(std::move(**r));
    }
  };
  if (byte_at_a_time) {
    for (char c : in) {
      p.feed(std::string_view(&c, 1));
      if (!drain()) return out;
    }
  } else {
    p.feed(in);
    if (!drain()) return out;
  }
  out.need_more = p.buffered() != 0 || p.in_reply();
  return out;
}

}  // namespace

TEST_CASE("single and multi-line replies, with and without enhanced codes") {
  auto r = parse_all(
      "220 mx.example ESMTP\r\n"
      "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
      "550 5.1.1 <x@y>: Recipient address rejected\r\n"
      "452-4.2.2 Mailbox\r\n452-4.2.2 is\r\n452 4.2.2 full\r\n"
      "354\r\n"
      "250 \r\n");
  REQUIRE(r.replies.size() == 6);
  CHECK(!r.error);
  CHECK(r.replies[0] == reply(220, {0, 0, 0}, "mx.example ESMTP"));
  CHECK(r.replies[1].code == 250);
  CHECK(r.replies[1].text == "mx.example\nPIPELINING\nSIZE 1000\n8BITMIME");
  CHECK(r.replies[2] == reply(550, {5, 1, 1}, "<x@y>: Recipient address rejected"));
  CHECK(r.replies[3] == reply(452, {4, 2, 2}, "Mailbox\nis\nfull"));
  CHECK(r.replies[3].wire() == "452-4.2.2 Mailbox\r\n452-4.2.2 is\r\n452 4.2.2 full\r\n");
  CHECK(r.replies[4] == reply(354, {0, 0, 0}, ""));
  CHECK(r.replies[5] == reply(250, {0, 0, 0}, ""));
}

TEST_CASE("enhanced codes: only when the class matches and the syntax is exact") {
  auto r = parse_all(
      "550 4.1.1 class does not match\r\n"
      "250 2.0.0\r\n"
      "250 2.1.5x not a code\r\n"
      "250 2.1000.5 too many digits\r\n"
      "250 2.300.5 over 255\r\n"
      "550-5.7.1 first\r\n550 second line without it\r\n"
      "221 2.0.0 Bye\r\n");
  REQUIRE(r.replies.size() == 7);
  CHECK(r.replies[0] == reply(550, {0, 0, 0}, "4.1.1 class does not match"));
  CHECK(r.replies[1] == reply(250, {2, 0, 0}, ""));
  CHECK(r.replies[2].enhanced == std::array<std::uint8_t, 3>{0, 0, 0});
  CHECK(r.replies[3].enhanced == std::array<std::uint8_t, 3>{0, 0, 0});
  CHECK(r.replies[4].enhanced == std::array<std::uint8_t, 3>{0, 0, 0});
  CHECK(r.replies[5] == reply(550, {5, 7, 1}, "first\nsecond line without it"));
  CHECK(r.replies[6] == reply(221, {2, 0, 0}, "Bye"));
}

TEST_CASE("bare LF ends a line; bytes may come one at a time") {
  std::string const in = "220 hi\n250-a\r\n250 b\n";
  for (bool slow : {false, true}) {
    auto r = parse_all(in, {}, slow);
    REQUIRE(r.replies.size() == 2);
    CHECK(r.replies[0].text == "hi");
    CHECK(r.replies[1].text == "a\nb");
    CHECK(!r.need_more);
  }
}

TEST_CASE("need more is not an error") {
  reply_parser p;
  p.feed("250-first\r\n250 sec");
  auto r = p.next();
  REQUIRE(r);
  CHECK(!*r);
  CHECK(p.in_reply());
  p.feed("ond\r\n221 ");
  r = p.next();
  REQUIRE(r);
  REQUIRE(*r);
  CHECK((*r)->text == "first\nsecond");
  r = p.next();
  REQUIRE(r);
  CHECK(!*r);
  CHECK(p.buffered() == 4);
  p.discard_buffered();
  CHECK(p.buffered() == 0);
  p.feed("220 again\r\n");
  r = p.next();
  REQUIRE((r && *r));
  CHECK((*r)->code == 220);
}

TEST_CASE("malformed replies are errors, and errors stick") {
  for (std::string_view bad : {"hello\r\n", "25\r\n", "2500 x\r\n", "250x\r\n", "150 one-digit class\r\n",
                               "650 out of range\r\n", "250-a\r\n251 mismatch\r\n", "\r\n", "25a ok\r\n"}) {
    CAPTURE(bad);
    auto r = parse_all(bad);
    CHECK(r.error == smtp::errc::malformed_reply);
  }
  reply_parser p;
  p.feed("garbage\r\n250 ok\r\n");
  CHECK(p.next().error() == smtp::errc::malformed_reply);
  p.feed("250 ok\r\n");
  CHECK(p.next().error() == smtp::errc::malformed_reply);
}

TEST_CASE("limits: a long line fails before its end arrives; too many lines fail") {
  smtp::reply_limits small{.max_line = 10, .max_lines = 3};
  CHECK(parse_all("250 123456\r\n", small).replies.size() == 1);   // exactly 10
  CHECK(parse_all("250 1234567\r\n", small).error == smtp::errc::reply_too_long);
  auto partial = parse_all("250 12345678", small);                 // 12 and no line end yet
  CHECK(partial.error == smtp::errc::reply_too_long);
  CHECK(parse_all("250 123456\r", small).error == std::error_code{});  // the CR may be followed by LF
  CHECK(parse_all("250-a\r\n250-b\r\n250 c\r\n", small).replies.size() == 1);
  CHECK(parse_all("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", small).error == smtp::errc::reply_too_long);

  // Defaults: a 100 KB line, fed as a server would send it, fails after about 4 KB.
  reply_parser p;
  std::string chunk(4096, 'x');
  p.feed("250 ");
  std::error_code ec;
  std::size_t fed = 4;
  while (fed < 100 * 1024) {
    p.feed(chunk);
    fed += chunk.size();
    auto r = p.next();
    if (!r) {
      ec = r.error();
      break;
    }
  }
  CHECK(ec == smtp::errc::reply_too_long);
  CHECK(fed <= 3 * 4096);
  CHECK(p.buffered() == 0);  // nothing kept after the error

  // Endless continuation lines stop at max_lines.
  reply_parser q;
  std::size_t lines = 0;
  for (; lines < 5000; ++lines) {
    q.feed("250-more\r\n");
    auto r = q.next();
    if (!r) {
      ec = r.error();
      break;
    }
  }
  CHECK(ec == smtp::errc::reply_too_long);
  CHECK(lines == 1000);
}
