#include <doctest/doctest.h>

#include <string>

#include "mailroom/smtp/command.hpp"

using namespace mailroom;
using namespace mailroom::smtp;

namespace {
extension_set all_on() {
  extension_set e;
  e.max_size = 1000;
  return e;
}
}  // namespace

TEST_CASE("verbs are case-insensitive and unknown ones are recognised as such") {
  CHECK(parse_command("ehlo x").v == verb::ehlo);
  CHECK(parse_command("MaIl FROM:<>").v == verb::mail);
  CHECK(parse_command("STARTTLS").v == verb::starttls);
  CHECK(parse_command("STARTTLS").args.empty());
  CHECK(parse_command("XYZZY 1").v == verb::unknown);
  CHECK(parse_command("").v == verb::unknown);
  CHECK(parse_command("MAILX FROM:<>").v == verb::unknown);
  CHECK(parse_command(std::string("MAIL\0 FROM", 10)).v == verb::unknown);
}

TEST_CASE("MAIL FROM with parameters") {
  auto m = parse_mail("FROM:<a.b@example.org> SIZE=500 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1", all_on());
  REQUIRE(m);
  CHECK(m->from.local == "a.b");
  CHECK(m->from.domain == "example.org");
  CHECK(*m->params.size == 500);
  CHECK(m->params.body == body_type::eight_bit_mime);
  CHECK(m->params.ret == dsn_ret::headers);
  CHECK(m->params.envid == "QQ+1");
}

TEST_CASE("MAIL FROM null sender, space after colon, source route") {
  auto a = parse_mail("FROM:<>", all_on());
  REQUIRE(a);
  CHECK(a->from.is_null());
  auto b = parse_mail("FROM: <x@y.z>", all_on());
  REQUIRE(b);
  CHECK(b->from.to_string() == "x@y.z");
  auto c = parse_mail("FROM:<@relay.example,@b.example:user@d.example>", all_on());
  REQUIRE(c);
  CHECK(c->from.to_string() == "user@d.example");
}

TEST_CASE("MAIL FROM rejects what it must, with the right codes") {
  auto code = [](std::string_view args, extension_set e = all_on()) {
    auto m = parse_mail(args, e);
    return m ? 0 : m.error().code;
  };
  CHECK(code("FROM:x@y") == 501);
  CHECK(code("TO:<x@y>") == 501);
  CHECK(code("FROM:<x@y> SIZE=1001") == 552);
  CHECK(code("FROM:<x@y> SIZE=99999999999999999999999") == 501);
  CHECK(code("FROM:<x@y> SIZE=1 SIZE=2") == 501);
  CHECK(code("FROM:<x@y> BODY=BINARYMIME") == 555);
  CHECK(code("FROM:<x@y> FOO=bar") == 555);
  CHECK(code("FROM:<x@y> RET=SOME") == 501);
  CHECK(code("FROM:<x@y> ENVID=a=b") == 501);
  CHECK(code("FROM:<x@y>junk") == 501);
  CHECK(code("FROM:<x@@y>") == 501);
  CHECK(code("FROM:<.x@y>") == 501);
  CHECK(code("FROM:<x@-y.com>") == 501);
  CHECK(code("FROM:<x@y") == 501);
  CHECK(code(std::string("FROM:<x\0@y>", 11)) == 501);
  CHECK(code("FROM:<jos\xc3\xa9@example.org>") == 501);  // UTF-8 without SMTPUTF8
  extension_set no_dsn = all_on();
  no_dsn.dsn = false;
  CHECK(code("FROM:<x@y> RET=FULL", no_dsn) == 555);
}

TEST_CASE("SMTPUTF8 admits UTF-8 addresses, but only valid UTF-8") {
  auto m = parse_mail("FROM:<jos\xc3\xa9@ex\xc3\xa4mple.org> SMTPUTF8", all_on());
  REQUIRE(m);
  CHECK(m->params.smtputf8);
  CHECK(m->from.local == "jos\xc3\xa9");
  CHECK_FALSE(parse_mail("FROM:<jos\xc3@example.org> SMTPUTF8", all_on()));
  CHECK_FALSE(parse_mail("FROM:<a\xc0\xaf" "b@example.org> SMTPUTF8", all_on()));  // overlong
}

TEST_CASE("RCPT TO with DSN parameters") {
  auto r = parse_rcpt("TO:<u@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u+40example.org", all_on());
  REQUIRE(r);
  CHECK(r->params.notify == (notify_success | notify_failure));
  CHECK(r->params.orcpt_type == "rfc822");
  CHECK(r->params.orcpt == "u@example.org");
  CHECK_FALSE(parse_rcpt("TO:<u@example.org> NOTIFY=NEVER,SUCCESS", all_on()));
  CHECK_FALSE(parse_rcpt("TO:<u@example.org> NOTIFY=", all_on()));
  CHECK_FALSE(parse_rcpt("TO:<u@example.org> ORCPT=nosemicolon", all_on()));
  CHECK_FALSE(parse_rcpt("TO:<>", all_on()));
  auto pm = parse_rcpt("TO:<Postmaster>", all_on());
  REQUIRE(pm);
  CHECK(pm->to.local == "Postmaster");
  CHECK(pm->to.domain.empty());
  auto quoted = parse_rcpt("TO:<\"john smith\"@example.org>", all_on());
  REQUIRE(quoted);
  CHECK(quoted->to.local == "john smith");
  CHECK(quoted->to.to_string() == "\"john smith\"@example.org");
  auto lit = parse_rcpt("TO:<a@[192.0.2.1]>", all_on());
  REQUIRE(lit);
  CHECK_FALSE(parse_rcpt("TO:<a@[999.0.2.1]>", all_on()));
  CHECK(parse_rcpt("TO:<a@[IPv6:2001:db8::1]>", all_on()));
}

TEST_CASE("BDAT sizes are bounded numbers") {
  auto b = parse_bdat("1000 LAST");
  REQUIRE(b);
  CHECK(b->size == 1000);
  CHECK(b->last);
  CHECK(parse_bdat("18446744073709551615"));
  CHECK_FALSE(parse_bdat("18446744073709551616"));
  CHECK_FALSE(parse_bdat("-1"));
  CHECK_FALSE(parse_bdat("10 LASTX"));
  CHECK_FALSE(parse_bdat(""));
  CHECK_FALSE(parse_bdat("0x10"));
}

TEST_CASE("AUTH command") {
  auto a = parse_auth("plain AGZvbwBiYXI=");
  REQUIRE(a);
  CHECK(a->mechanism == "PLAIN");
  CHECK(*a->initial_response == "AGZvbwBiYXI=");
  CHECK_FALSE(parse_auth(""));
  CHECK_FALSE(parse_auth("PL/AIN"));
  CHECK_FALSE(parse_auth("PLAIN a b"));
}

TEST_CASE("xtext round trip") {
  std::string raw = "a+b=c d\x01";
  auto enc = xtext_encode(raw);
  CHECK(enc == "a+2Bb+3Dc+20d+01");
  CHECK(*xtext_decode(enc) == raw);
  CHECK_FALSE(xtext_decode("+2"));
  CHECK_FALSE(xtext_decode("+zz"));
  CHECK_FALSE(xtext_decode("a b"));
}

TEST_CASE("replies render with enhanced codes and multiple lines") {
  CHECK(replies::ok().wire() == "250 2.0.0 Ok\r\n");
  CHECK(reply(250, "a\nb").wire() == "250-a\r\n250 b\r\n");
  CHECK(reply{550, {5, 1, 1}, "no\nsuch"}.wire() == "550-5.1.1 no\r\n550 5.1.1 such\r\n");
  CHECK(reply(250, "bad\rline").wire() == "250 bad line\r\n");
}
