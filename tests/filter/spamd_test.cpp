// The spamd client: the SPAMC/1.5 reply parser and its interpretation, the request it sends,
// then whole exchanges against scripted servers.
#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <vector>

#include "filter/scan_fake.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/filter/spamd.hpp"
#include "mailroom/net/error.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::filter;
using namespace std::chrono_literals;

namespace {

/// Feeds `in` (whole or a byte at a time), then ends the stream.
testing::parsed_reply<spamd_reply> parse(std::string_view in, spamd_command cmd, spamd_reply_limits limits = {},
                                         bool bytewise = false) {
  spamd_reply_parser p(cmd, limits);
  return testing::feed_all(p, in, bytewise);
}

constexpr std::string_view check_spam = "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n";
constexpr std::string_view symbols_spam =
    "SPAMD/1.1 0 EX_OK\r\nContent-length: 55\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n"
    "GTUBE,MSGID_SHORT,NO_RECEIVED,NO_RELAYS,TVD_SPACE_RATIO";

log::logger quiet() { return log::logger(std::make_shared<log::null_sink>(), log::level::off); }

bool request_complete(std::string const& r) { return testing::request_complete(r, "Content-length: "); }

struct scripted {
  asio::io_context io;
  testing::fake_scanner f{io};
  spamd_options o;

  explicit scripted(std::vector<std::string> reply) {
    f.complete = request_complete;
    f.reply = std::move(reply);
    o.address = f.address();
    o.deadlines = {2s, 2s, 5s};
  }
  result<spamd_verdict> scan(std::string_view message, spamd_command cmd = spamd_command::check) {
    f.start();
    spamd_client c(io.get_executor(), o, quiet());
    return testing::run(io, c.scan(message, cmd));
  }
};

}  // namespace

TEST_CASE("spamd replies: CHECK, SYMBOLS, REPORT, errors; whole or byte at a time") {
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    auto a = parse(check_spam, spamd_command::check, {}, bytewise);
    REQUIRE(a.reply);
    CHECK(a.reply->code == 0);
    CHECK(a.reply->message == "EX_OK");
    CHECK(a.reply->spam == "True ; 1000.0 / 5.0");
    CHECK(a.reply->body.empty());

    auto b = parse(symbols_spam, spamd_command::symbols, {}, bytewise);
    REQUIRE(b.reply);
    CHECK(b.reply->content_length == 55u);
    CHECK(b.reply->body == "GTUBE,MSGID_SHORT,NO_RECEIVED,NO_RELAYS,TVD_SPACE_RATIO");

    auto c = parse("SPAMD/1.0 76 Bad header line: (header not in 'Name: value' format)\r\n", spamd_command::check, {},
                   bytewise);
    REQUIRE(c.reply);
    CHECK(c.reply->code == 76);
    CHECK(c.reply->message == "Bad header line: (header not in 'Name: value' format)");
  }
  // A body without Content-length (older spamd) ends with the connection.
  auto d = parse("SPAMD/1.1 0 EX_OK\nSpam: False ; 1.0 / 5.0\n\nA,B\n", spamd_command::symbols);
  REQUIRE(d.reply);
  CHECK(d.reply->body == "A,B\n");
  // Content-length: 0 for SYMBOLS means no symbols.
  auto e = parse("SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; 0.0 / 5.0\r\n\r\n", spamd_command::symbols);
  REQUIRE(e.reply);
  CHECK(e.reply->body.empty());
}

TEST_CASE("spamd replies: malformed, over the limits, cut short") {
  struct bad {
    char const* name;
    std::string in;
    spamd_command cmd;
    std::error_code expected;
  };
  spamd_reply_limits small{64, 3, 16};
  std::vector<bad> cases = {
      {"not spamd", "HTTP/1.1 200 OK\r\n\r\n", spamd_command::check, make_error_code(scan_errc::malformed_reply)},
      {"no version", "SPAMD/ 0 EX_OK\r\n\r\n", spamd_command::check, make_error_code(scan_errc::malformed_reply)},
      {"no code", "SPAMD/1.1 EX_OK\r\n\r\n", spamd_command::check, make_error_code(scan_errc::malformed_reply)},
      {"header without colon", "SPAMD/1.1 0 EX_OK\r\nSpam True\r\n\r\n", spamd_command::check,
       make_error_code(scan_errc::malformed_reply)},
      {"bad length", "SPAMD/1.1 0 EX_OK\r\nContent-length: 1x\r\n\r\n", spamd_command::symbols,
       make_error_code(scan_errc::malformed_reply)},
      {"two lengths", "SPAMD/1.1 0 EX_OK\r\nContent-length: 1\r\nContent-length: 1\r\n\r\nA", spamd_command::symbols,
       make_error_code(scan_errc::malformed_reply)},
      {"more than announced", "SPAMD/1.1 0 EX_OK\r\nContent-length: 1\r\n\r\nAB", spamd_command::symbols,
       make_error_code(scan_errc::malformed_reply)},
      {"octets after a CHECK reply", std::string(check_spam) + "x", spamd_command::check,
       make_error_code(scan_errc::malformed_reply)},
      {"overlong line", "SPAMD/1.1 0 EX_OK\r\nX: " + std::string(100, 'x'), spamd_command::check,
       make_error_code(scan_errc::reply_too_large)},
      {"too many headers", "SPAMD/1.1 0 EX_OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", spamd_command::check,
       make_error_code(scan_errc::reply_too_large)},
      {"body over max_body", "SPAMD/1.1 0 EX_OK\r\nContent-length: 17\r\n\r\n", spamd_command::symbols,
       make_error_code(scan_errc::reply_too_large)},
      {"unannounced body over max_body", "SPAMD/1.1 0 EX_OK\r\n\r\n" + std::string(17, 'A'), spamd_command::report,
       make_error_code(scan_errc::reply_too_large)},
      {"EOF in the status line", "SPAMD/1.1 0 EX", spamd_command::check, make_error_code(net::errc::eof)},
      {"EOF in the headers", "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5\r\n", spamd_command::check,
       make_error_code(net::errc::eof)},
      {"EOF in the body", "SPAMD/1.1 0 EX_OK\r\nContent-length: 10\r\n\r\nAB", spamd_command::symbols,
       make_error_code(net::errc::eof)},
  };
  for (auto const& c : cases) {
    CAPTURE(c.name);
    auto r = parse(c.in, c.cmd, small);
    CHECK(!r.reply);
    CHECK(r.error == c.expected);
  }
  // The overlong line is refused before its end arrives, and errors stick.
  spamd_reply_parser p(spamd_command::check, small);
  p.feed(std::string(66, 'S'));
  CHECK(p.next().error() == scan_errc::reply_too_large);
  p.feed("\r\n");
  CHECK(p.next().error() == scan_errc::reply_too_large);
  CHECK(p.finish().error() == scan_errc::reply_too_large);
}

TEST_CASE("spamd verdicts") {
  spamd_reply r;
  r.spam = "True ; 15.3 / 5.0";
  auto v = interpret_spamd_reply(r, spamd_command::check);
  REQUIRE(v);
  CHECK(v->spam);
  CHECK(v->score == doctest::Approx(15.3));
  CHECK(v->threshold == doctest::Approx(5.0));

  r.spam = "False ; -2.1 / 5.0";
  r.body = " BAYES_00, DKIM_SIGNED,\r\nSPF_PASS\r\n";
  v = interpret_spamd_reply(r, spamd_command::symbols);
  REQUIRE(v);
  CHECK(!v->spam);
  CHECK(v->score == doctest::Approx(-2.1));
  CHECK(v->symbols == std::vector<std::string>{"BAYES_00", "DKIM_SIGNED", "SPF_PASS"});

  r.spam = "Yes ; 7 / 5";
  v = interpret_spamd_reply(r, spamd_command::report);
  REQUIRE(v);
  CHECK(v->spam);
  CHECK(v->report == r.body);
  CHECK(v->symbols.empty());

  for (std::string_view bad : {"True", "True ; 1.0", "Maybe ; 1 / 5", "True ; x / 5", "True / 5 ; 1", "True ; 1 / 5x"}) {
    r.spam = std::string(bad);
    CHECK_MESSAGE(interpret_spamd_reply(r, spamd_command::check).error() == scan_errc::malformed_reply, bad);
  }
  r.spam.reset();
  CHECK(interpret_spamd_reply(r, spamd_command::check).error() == scan_errc::malformed_reply);
  r.spam = "True ; 1 / 5";
  r.body = "A,,B";
  CHECK(interpret_spamd_reply(r, spamd_command::symbols).error() == scan_errc::malformed_reply);

  struct code_case {
    int code;
    scan_errc expected;
  };
  for (auto c : {code_case{64, scan_errc::request_refused}, code_case{65, scan_errc::request_refused},
                                code_case{67, scan_errc::request_refused}, code_case{76, scan_errc::request_refused},
                                code_case{77, scan_errc::request_refused}, code_case{69, scan_errc::temporarily_unavailable},
                                code_case{75, scan_errc::temporarily_unavailable}, code_case{79, scan_errc::temporarily_unavailable},
                                code_case{70, scan_errc::scanner_error}, code_case{74, scan_errc::scanner_error},
                                code_case{1, scan_errc::scanner_error}}) {
    spamd_reply e;
    e.code = c.code;
    CHECK_MESSAGE(interpret_spamd_reply(e, spamd_command::check).error() == c.expected, c.code);
  }
}

TEST_CASE("spamd request head") {
  CHECK(spamd_request_head(spamd_command::check, 42, "").value() == "CHECK SPAMC/1.5\r\nContent-length: 42\r\n\r\n");
  CHECK(spamd_request_head(spamd_command::symbols, 0, "alice").value() ==
        "SYMBOLS SPAMC/1.5\r\nContent-length: 0\r\nUser: alice\r\n\r\n");
  CHECK(spamd_request_head(spamd_command::report, 1, "bob").value().starts_with("REPORT SPAMC/1.5\r\n"));
  CHECK(spamd_request_head(spamd_command::check, 1, "a\r\nX: y").error() == errc::invalid_argument);
}

TEST_CASE("spamd client: the request as sent, spam found with symbols") {
  scripted s({"SPAMD/1.1 0 EX_OK\r\nContent-length: 55\r\n", "Spam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,MSGID_SHORT,",
              "NO_RECEIVED,NO_RELAYS,TVD_SPACE_RATIO"});
  s.f.pause = 10ms;
  s.o.user = "alice";
  std::string const message = "Subject: x\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
  auto v = s.scan(message, spamd_command::symbols);
  REQUIRE(v);
  CHECK(v->spam);
  CHECK(v->score == 1000.0);
  CHECK(v->threshold == 5.0);
  REQUIRE(v->symbols.size() == 5);
  CHECK(v->symbols[0] == "GTUBE");
  CHECK(v->symbols[4] == "TVD_SPACE_RATIO");
  CHECK(s.f.received == "SYMBOLS SPAMC/1.5\r\nContent-length: " + std::to_string(message.size()) +
                            "\r\nUser: alice\r\n\r\n" + message);
}

TEST_CASE("spamd client: ham, errors, hostile servers, deadlines") {
  struct exchange {
    char const* name;
    std::vector<std::string> reply;
    std::error_code expected;  // none: ham
  };
  std::vector<exchange> cases = {
      {"ham", {"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.4 / 5.0\r\n\r\n"}, {}},
      {"EX_PROTOCOL", {"SPAMD/1.0 76 Bad header line: x\r\n"}, make_error_code(scan_errc::request_refused)},
      {"EX_TEMPFAIL", {"SPAMD/1.0 75 try later\r\n"}, make_error_code(scan_errc::temporarily_unavailable)},
      {"garbage", {"<html>go away</html>\r\n"}, make_error_code(scan_errc::malformed_reply)},
      {"overlong", {std::string(200'000, 'S')}, make_error_code(scan_errc::reply_too_large)},
      {"EOF mid-reply", {"SPAMD/1.1 0 EX_OK\r\nSpam: Tr"}, make_error_code(net::errc::eof)},
      {"EOF at once", {}, make_error_code(net::errc::eof)},
  };
  for (auto const& c : cases) {
    CAPTURE(c.name);
    scripted s(c.reply);
    auto v = s.scan("Subject: hello\r\n\r\nhi\r\n");
    if (!c.expected) {
      REQUIRE(v);
      CHECK(!v->spam);
      CHECK(v->score == doctest::Approx(0.4));
    } else {
      REQUIRE(!v);
      CHECK(v.error() == c.expected);
    }
  }
  SUBCASE("silence") { CHECK(testing::silent_scan<scripted>() == net::errc::timeout); }
  SUBCASE("over max_size: refused without connecting") {
    scripted s({std::string(check_spam)});
    s.o.max_size = 10;
    CHECK(s.scan("12345678901").error() == scan_errc::message_too_large);
    CHECK(s.f.received.empty());
  }
}

TEST_CASE("spamd client: PING") {
  {
    scripted s({"SPAMD/1.5 0 PONG\r\n"});
    s.f.complete = [](std::string const& r) { return r == "PING SPAMC/1.5\r\n\r\n"; };
    s.f.start();
    spamd_client c(s.io.get_executor(), s.o, quiet());
    CHECK(testing::run(s.io, c.ping()));
  }
  {
    scripted s({"SPAMD/1.5 76 Bad header line\r\n"});
    s.f.start();
    spamd_client c(s.io.get_executor(), s.o, quiet());
    CHECK(testing::run(s.io, c.ping()).error() == scan_errc::malformed_reply);
  }
}
