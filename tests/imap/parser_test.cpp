// The IMAP command reader, including hostile input.
#include <doctest/doctest.h>

#include <string>

#include "mailroom/imap/parser.hpp"

using namespace mailroom::imap;
using kind = parser::event::kind;
using namespace std::literals;

namespace {
// Feeds `in` in pieces of `piece` octets, collecting events; answers continuations implicitly.
std::vector<parser::event> run(parser& p, std::string_view in, std::size_t piece = 5) {
  std::vector<parser::event> out;
  for (std::size_t i = 0; i < in.size(); i += piece) {
    p.feed(in.substr(i, piece));
    for (auto e = p.next(); e.k != kind::need_more; e = p.next()) out.push_back(std::move(e));
  }
  return out;
}
parser::event one(std::string_view in, parser_limits l = {}) {
  parser p(l);
  auto ev = run(p, in);
  REQUIRE(ev.size() >= 1);
  return ev.back();
}
}  // namespace

TEST_CASE("tags, names, UID, atoms, quoted strings, NIL and lists") {
  auto e = one("a1 uid fetch 1:*,7 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.100> UID)\r\n");
  REQUIRE(e.k == kind::command);
  CHECK(e.cmd.tag == "a1");
  CHECK(e.cmd.uid);
  CHECK(e.cmd.name == "FETCH");
  REQUIRE(e.cmd.args.size() == 2);
  CHECK(e.cmd.args[0].text == "1:*,7");
  REQUIRE(e.cmd.args[1].k == value::kind::list);
  REQUIRE(e.cmd.args[1].items.size() == 3);
  CHECK(e.cmd.args[1].items[1].text == "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]<0.100>");
  e = one("t LOGIN \"jo \\\"q\\\" \\\\\" nil\r\n");
  REQUIRE(e.k == kind::command);
  CHECK(e.cmd.args[0].k == value::kind::string);
  CHECK(e.cmd.args[0].text == "jo \"q\" \\");
  CHECK(e.cmd.args[1].k == value::kind::nil);
  e = one("x STORE 1 +FLAGS (\\Seen $Label1)\n");  // bare LF is tolerated
  REQUIRE(e.k == kind::command);
  CHECK(e.cmd.args[2].items[0].text == "\\Seen");
  e = one("x LIST \"\" %\r\n");
  CHECK(e.cmd.args[1].text == "%");
  e = one("x SELECT \"Entw\xc3\xbcrfe\"\r\n");  // UTF-8 in quoted strings (IMAP4rev2)
  CHECK(e.cmd.args[0].text == "Entw\xc3\xbcrfe");
}

TEST_CASE("literals: synchronizing asks for a continuation, LITERAL+ does not, literal8 carries NUL") {
  parser p;
  auto ev = run(p, "a LOGIN {5}\r\n");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].k == kind::continuation);
  ev = run(p, "alice {6}\r\n", 3);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].k == kind::continuation);
  ev = run(p, "s\r\n\r\nt\r\n", 2);
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0].k == kind::command);
  CHECK(ev[0].cmd.args[0].text == "alice");
  CHECK(ev[0].cmd.args[0].literal);
  CHECK(ev[0].cmd.args[1].text == "s\r\n\r\nt");
  parser_limits lp;
  lp.literal_plus = true;
  parser q(lp);
  ev = run(q, "b APPEND INBOX (\\Seen) {3+}\r\nabc ~{4+}\r\na\0b\n\r\n"sv, 4);
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0].k == kind::command);
  CHECK(ev[0].cmd.args[2].text == "abc");
  CHECK(ev[0].cmd.args[3].text == std::string("a\0b\n", 4));
  CHECK(ev[0].cmd.args[3].binary);
}

TEST_CASE("hostile: huge literals, deep nesting, NUL, long lines, missing tags, junk") {
  // {4294967296} synchronizing: refused, the connection goes on.
  auto e = one("a APPEND INBOX {4294967296}\r\n");
  CHECK(e.k == kind::error);
  CHECK(!e.fatal);
  CHECK(e.tag == "a");
  CHECK(e.message.find("TOOBIG") != std::string::npos);
  e = one("a LOGIN {99999999999999999999999}\r\n");
  CHECK(e.k == kind::error);
  // The same as LITERAL+: its bytes are already coming, so the connection must end.
  parser_limits lp;
  lp.literal_plus = true;
  e = one("a APPEND INBOX {4294967296+}\r\n", lp);
  CHECK(e.k == kind::error);
  CHECK(e.fatal);
  // LITERAL- caps non-synchronizing literals at 4096.
  e = one("a APPEND INBOX {5000+}\r\n");
  CHECK(e.fatal);
  // 100k parentheses: longer than a line may be; 200 fit in a line but nest too deeply.
  e = one("a FETCH 1 " + std::string(100000, '(') + "\r\n");
  CHECK(e.k == kind::error);
  e = one("a FETCH 1 " + std::string(200, '(') + "\r\n");
  CHECK(e.k == kind::error);
  CHECK(e.message.find("nested") != std::string::npos);
  e = one("a FETCH 1 " + std::string(50, '(') + std::string(50, ')') + "\r\n");
  CHECK(e.k == kind::command);
  // NUL outside literal8.
  e = one("a LOGIN x\0y z\r\n"sv);
  CHECK(e.k == kind::error);
  CHECK(e.message.find("NUL") != std::string::npos);
  // An endless line: memory stays bounded, one BAD at its end.
  parser p;
  std::size_t errors = 0;
  for (int i = 0; i < 200; ++i) {
    p.feed(std::string(4096, 'A'));
    for (auto ev = p.next(); ev.k != kind::need_more; ev = p.next()) ++errors;
    CHECK(p.buffered() <= 64 * 1024 + 4096);
  }
  p.feed("\r\nb NOOP\r\n");
  auto ev1 = p.next();
  CHECK(ev1.k == kind::error);
  CHECK(ev1.message == "Line too long");
  auto ev2 = p.next();
  REQUIRE(ev2.k == kind::command);
  CHECK(ev2.cmd.name == "NOOP");
  CHECK(errors == 0);
  for (auto bad : {"\r\n", "NOOP\r\n", "+ NOOP\r\n", "a\r\n", "a  NOOP\r\n", "a NOOP  x\r\n", "a X \"open\r\n",
                   "a X (a b\r\n", "a X a)\r\n", "a X BODY[1\r\n", "a X \"bad\\escape\"\r\n", "a X {12\r\n"}) {
    CAPTURE(bad);
    CHECK(one(bad).k == kind::error);
  }
}

TEST_CASE("IDLE's DONE, and discarding pipelined input after STARTTLS") {
  parser p;
  p.feed("DO");
  CHECK(p.take_done() == false);
  p.feed("NE\r\na NOOP\r\n");
  CHECK(p.take_done() == true);
  CHECK(p.next().cmd.name == "NOOP");
  p.feed("nope\r\n");
  CHECK(!p.take_done());
  p.feed("a STARTTLS\r\nb LOGIN x y\r\n");
  CHECK(p.next().cmd.name == "STARTTLS");
  CHECK(p.buffered() > 0);
  p.discard_buffered();
  CHECK(p.next().k == kind::need_more);
}

TEST_CASE("sequence sets") {
  auto s = parse_sequence_set("1:3,7,9:*,2", 12).value();
  REQUIRE(s.size() == 3);
  CHECK(s[0].first == 1);
  CHECK(s[0].last == 3);
  CHECK(s[2].first == 9);
  CHECK(s[2].last == 12);
  CHECK(contains(s, 7));
  CHECK(!contains(s, 8));
  CHECK(contains(s, 12));
  CHECK(parse_sequence_set("*:4", 2).value()[0].first == 2);  // reversed ranges are fine
  CHECK(parse_sequence_set("*", 0).value().empty());
  for (auto bad : {"", "0", "1,", ",1", "a", "1:", "1::2", "01", "4294967296", "1:2:3"}) {
    CAPTURE(bad);
    CHECK(!parse_sequence_set(bad, 10));
  }
}
