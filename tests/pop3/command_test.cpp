#include <doctest/doctest.h>

#include <string>

#include "mailroom/pop3/command.hpp"

using namespace mailroom::pop3;

namespace {
std::string encode(std::string_view in, std::optional<std::uint32_t> top = std::nullopt, std::size_t piece = 3) {
  multiline_encoder e(top);
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += piece) e.feed(in.substr(i, piece), out);
  e.finish(out);
  return out;
}
}  // namespace

TEST_CASE("commands: case-insensitive verbs, single-space arguments, PASS keeps spaces") {
  auto c = parse_command("retr 12");
  CHECK(c.v == verb::retr);
  CHECK(c.args == 1);
  CHECK(c.arg1 == "12");
  c = parse_command("TOP 1 10");
  CHECK(c.v == verb::top);
  CHECK(c.args == 2);
  CHECK(c.arg2 == "10");
  c = parse_command("PASS my secret  pw");
  CHECK(c.v == verb::pass);
  CHECK(c.arg1 == "my secret  pw");
  CHECK(parse_command("LIST 1 2 3").args == 3);
  CHECK(parse_command("LIST 1 ").args == 2);  // trailing space: an empty argument
  CHECK(parse_command("XTND").v == verb::unknown);
  CHECK(parse_command("").v == verb::unknown);
  CHECK(parse_command("RETRX 1").v == verb::unknown);
  CHECK(parse_number("1") == 1u);
  CHECK(!parse_number("0x1"));
  CHECK(!parse_number("-1"));
  CHECK(!parse_number(""));
  CHECK(!parse_number("4294967296"));
  CHECK(!parse_number("99999999999999999999"));
}

TEST_CASE("multi-line bodies: CRLF line ends, dot-stuffing, terminator") {
  CHECK(encode("a\r\n.b\r\n..c\r\n") == "a\r\n..b\r\n...c\r\n.\r\n");
  CHECK(encode("bare\nlf\n.dot") == "bare\r\nlf\r\n..dot\r\n.\r\n");
  CHECK(encode("cr\ronly") == "cr\r\nonly\r\n.\r\n");
  CHECK(encode("") == ".\r\n");
  CHECK(encode(".\r\n") == "..\r\n.\r\n");
  CHECK(encode("x\r\n", std::nullopt, 1) == "x\r\n.\r\n");
}

TEST_CASE("TOP: the header, the empty line and n body lines") {
  std::string msg = "Subject: a\r\nFrom: b\r\n\r\nline1\r\n.line2\r\nline3\r\n";
  CHECK(encode(msg, 0) == "Subject: a\r\nFrom: b\r\n\r\n.\r\n");
  CHECK(encode(msg, 2) == "Subject: a\r\nFrom: b\r\n\r\nline1\r\n..line2\r\n.\r\n");
  CHECK(encode(msg, 100) == "Subject: a\r\nFrom: b\r\n\r\nline1\r\n..line2\r\nline3\r\n.\r\n");
  CHECK(encode("Subject: no body", 3) == "Subject: no body\r\n.\r\n");
}
