// The rspamd client: its bounded JSON and HTTP readers, the /checkv2 verdict, the request it
// sends, and whole exchanges against scripted servers.
#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <vector>

#include "filter/detail/http_reply.hpp"
#include "filter/detail/json.hpp"
#include "filter/scan_fake.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/filter/rspamd.hpp"
#include "mailroom/net/error.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::filter;
using namespace std::chrono_literals;
namespace fd = mailroom::filter::detail;
using fd::json_value;

namespace {

// As rspamd 3.4 answered GTUBE (trimmed), plus milter changes.
constexpr std::string_view gtube_json =
    R"({"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE",)"
    R"("score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"},"message-id":"1@example.com",)"
    R"("time_real":0.233048,"milter":{"add_headers":{"X-Spam":{"value":"Yes","order":0},"X-Spamd-Bar":"+++",)"
    R"("X-Multi":[{"value":"a","order":1},"b"]},"remove_headers":{"X-Spam":0,"X-Old":-1}}})";

std::string http_ok(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nConnection: close\r\nServer: rspamd/3.4\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nContent-Type: application/json\r\n\r\n" + std::string(body);
}

std::string chunked(std::string_view body, std::size_t piece) {
  std::string out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t i = 0; i < body.size(); i += piece) {
    auto part = body.substr(i, piece);
    char size[20];
    std::snprintf(size, sizeof size, "%zx;ext=1\r\n", part.size());
    out += size;
    out.append(part).append("\r\n");
  }
  return out + "0\r\nX-Trailer: t\r\n\r\n";
}

testing::parsed_reply<fd::http_response> read_http(std::string_view in, fd::http_limits limits = {},
                                                   bool bytewise = false) {
  fd::http_response_parser p(limits);
  return testing::feed_all(p, in, bytewise);
}

log::logger quiet() { return log::logger(std::make_shared<log::null_sink>(), log::level::off); }

bool request_complete(std::string const& r) { return testing::request_complete(r, "Content-Length: "); }

struct scripted {
  asio::io_context io;
  testing::fake_scanner f;
  rspamd_options o;

  explicit scripted(std::vector<std::string> reply, bool unix_socket = false) : f(io, unix_socket) {
    f.complete = request_complete;
    f.reply = std::move(reply);
    o.address = f.address();
    o.deadlines = {2s, 2s, 5s};
  }
  result<rspamd_verdict> scan(std::string_view message, rspamd_envelope const& env = {}) {
    f.start();
    rspamd_client c(io.get_executor(), o, quiet());
    return testing::run(io, c.scan(message, env));
  }
};

}  // namespace

TEST_CASE("scanner addresses") {
  auto a = scanner_address::parse("inet:3310@127.0.0.1").value();
  CHECK(a.k == scanner_address::kind::tcp);
  CHECK(a.endpoint == asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 3310));
  CHECK(a.to_string() == "inet:3310@127.0.0.1");
  CHECK(scanner_address::parse("127.0.0.1:783").value().endpoint.port() == 783);
  CHECK_FALSE(scanner_address::parse("unix:127.0.0.1:3310"));  // unix: takes a path, nothing else
  CHECK(scanner_address::parse("localhost:11333").value().endpoint.address().to_string() == "127.0.0.1");
  auto v6 = scanner_address::parse("[::1]:11333").value();
  CHECK(v6.endpoint.address().to_string() == "::1");
  CHECK(scanner_address::parse(v6.to_string()).value().endpoint == v6.endpoint);
  CHECK(scanner_address::parse("inet:11333@[::1]").value().endpoint == v6.endpoint);
  auto u = scanner_address::parse("unix:/run/clamav/clamd.ctl").value();
  CHECK(u.k == scanner_address::kind::unix_socket);
  CHECK(u.path == "/run/clamav/clamd.ctl");
  CHECK(u.to_string() == "unix:/run/clamav/clamd.ctl");
  CHECK(scanner_address::parse("/var/run/spamd.sock").value().path == "/var/run/spamd.sock");
  for (std::string_view bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x",
                               "clamav.example:3310", "::1:3310", "inet:3310", "inet:@127.0.0.1", "unix:", "unix:relative",
                               "inet:3310@host.example"})
    CHECK_MESSAGE(scanner_address::parse(bad).error() == errc::invalid_argument, bad);
  CHECK(scanner_address::parse("/" + std::string(106, 'x')));
  CHECK(!scanner_address::parse("/" + std::string(107, 'x')));
}

TEST_CASE("json: values, escapes, numbers") {
  auto doc = fd::parse_json(
      R"( {"a": [1, -2.5e3, 0, true, false, null], "s": "x\"\\\/\b\f\n\r\tq\u00e9\ud83d\ude00", "o": {}, "e": []} )");
  REQUIRE(doc);
  REQUIRE(doc->is(json_value::kind::object));
  auto const* a = doc->find("a");
  REQUIRE(a);
  REQUIRE(a->elements.size() == 6);
  CHECK(a->elements[0].number == 1);
  CHECK(a->elements[1].number == -2500);
  CHECK(a->elements[3].boolean);
  CHECK(a->elements[4].is(json_value::kind::boolean));
  CHECK(!a->elements[4].boolean);
  CHECK(a->elements[5].is(json_value::kind::null));
  CHECK(doc->find("s")->string == "x\"\\/\b\f\n\r\tq\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(doc->find("o")->is(json_value::kind::object));
  CHECK(doc->find("e")->elements.empty());
  CHECK(doc->find("missing") == nullptr);
  CHECK(a->find("a") == nullptr);  // not an object

  for (std::string_view bad : {"", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1",
                               "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"",
                               "\"\\ud800\\u0041\"", "\"a\tb\"", "1 2", "{} x", "1e999", "[1 2]", "'a'"})
    CHECK_MESSAGE(fd::parse_json(bad).error() == scan_errc::malformed_reply, bad);
}

TEST_CASE("json: limits on depth, values and strings") {
  fd::json_limits l{4, 10, 8};
  CHECK(fd::parse_json("[[[[1]]]]", l));
  CHECK(fd::parse_json("[[[[[1]]]]]", l).error() == scan_errc::reply_too_large);
  CHECK(fd::parse_json("[1,2,3,4,5,6,7,8,9]", l));
  CHECK(fd::parse_json("[1,2,3,4,5,6,7,8,9,10]", l).error() == scan_errc::reply_too_large);
  CHECK(fd::parse_json("\"12345678\"", l));
  CHECK(fd::parse_json("\"123456789\"", l).error() == scan_errc::reply_too_large);
  CHECK(fd::parse_json("{\"123456789\":1}", l).error() == scan_errc::reply_too_large);
  // Deep nesting with the defaults: refused, not a stack overflow.
  std::string deep(100'000, '[');
  CHECK(fd::parse_json(deep).error() == scan_errc::reply_too_large);
}

TEST_CASE("http responses: Content-Length, chunked, to the end; in pieces") {
  std::string body(300, 'j');
  for (bool bytewise : {false, true}) {
    CAPTURE(bytewise);
    auto a = read_http(http_ok(body), {}, bytewise);
    REQUIRE(a.reply);
    CHECK(a.reply->status == 200);
    CHECK(a.reply->reason == "OK");
    CHECK(*a.reply->header("content-type") == "application/json");
    CHECK(a.reply->body == body);

    auto b = read_http(chunked(body, 7), {}, bytewise);
    REQUIRE(b.reply);
    CHECK(b.reply->body == body);
    CHECK(b.reply->header("X-Trailer") == nullptr);  // trailers are dropped

    auto c = read_http("HTTP/1.0 200 OK\nServer: x\n\n" + body, {}, bytewise);
    REQUIRE(c.reply);
    CHECK(c.reply->body == body);

    auto d = read_http("HTTP/1.1 100 Continue\r\n\r\n" + http_ok("{}"), {}, bytewise);
    REQUIRE(d.reply);
    CHECK(d.reply->status == 200);
    CHECK(d.reply->body == "{}");
  }
  auto e = read_http("HTTP/1.1 204 No Content\r\n\r\n");
  REQUIRE(e.reply);
  CHECK(e.reply->body.empty());
}

TEST_CASE("http responses: malformed, over the limits, cut short") {
  fd::http_limits small{64, 4, 100};
  struct bad {
    char const* name;
    std::string in;
    std::error_code expected;
  };
  std::vector<bad> cases = {
      {"not HTTP", "SPAMD/1.1 0 EX_OK\r\n\r\n", make_error_code(scan_errc::malformed_reply)},
      {"HTTP/2", "HTTP/2 200 OK\r\n\r\n", make_error_code(scan_errc::malformed_reply)},
      {"bad code", "HTTP/1.1 2x0 OK\r\n\r\n", make_error_code(scan_errc::malformed_reply)},
      {"header without colon", "HTTP/1.1 200 OK\r\nServer\r\n\r\n", make_error_code(scan_errc::malformed_reply)},
      {"space in a name", "HTTP/1.1 200 OK\r\nContent Length: 1\r\n\r\nx", make_error_code(scan_errc::malformed_reply)},
      {"both lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
       make_error_code(scan_errc::malformed_reply)},
      {"differing lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
       make_error_code(scan_errc::malformed_reply)},
      {"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", make_error_code(scan_errc::malformed_reply)},
      {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", make_error_code(scan_errc::malformed_reply)},
      {"huge chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
       make_error_code(scan_errc::malformed_reply)},
      {"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
       make_error_code(scan_errc::malformed_reply)},
      {"octets after the body", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy", make_error_code(scan_errc::malformed_reply)},
      {"overlong line", "HTTP/1.1 200 OK\r\nServer: " + std::string(100, 's'), make_error_code(scan_errc::reply_too_large)},
      {"too many headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n",
       make_error_code(scan_errc::reply_too_large)},
      {"Content-Length over max_body", "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",
       make_error_code(scan_errc::reply_too_large)},
      {"chunks over max_body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n32\r\n" + std::string(50, 'x') +
                                   "\r\n33\r\n", make_error_code(scan_errc::reply_too_large)},
      {"EOF body over max_body", "HTTP/1.1 200 OK\r\n\r\n" + std::string(101, 'x'), make_error_code(scan_errc::reply_too_large)},
      {"EOF in the headers", "HTTP/1.1 200 OK\r\nContent-", make_error_code(net::errc::eof)},
      {"EOF in the body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", make_error_code(net::errc::eof)},
      {"EOF in a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", make_error_code(net::errc::eof)},
      {"EOF before the last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",
       make_error_code(net::errc::eof)},
  };
  for (auto const& c : cases) {
    CAPTURE(c.name);
    auto r = read_http(c.in, small);
    CHECK(!r.reply);
    CHECK(r.error == c.expected);
  }
}

TEST_CASE("rspamd verdict from /checkv2 JSON") {
  auto v = parse_rspamd_json(gtube_json);
  REQUIRE(v);
  CHECK(v->action == "reject");
  CHECK(v->score == 15.0);
  CHECK(v->required_score == 15.0);
  CHECK(v->skipped);
  REQUIRE(v->symbols.size() == 1);
  CHECK(v->symbols[0].name == "GTUBE");
  CHECK(v->smtp_message == "Gtube pattern");
  REQUIRE(v->add_headers.size() == 4);
  CHECK(v->add_headers[0].name == "X-Spam");
  CHECK(v->add_headers[0].value == "Yes");
  CHECK(v->add_headers[0].order == 0);
  CHECK(v->add_headers[1].name == "X-Spamd-Bar");
  CHECK(v->add_headers[1].value == "+++");
  CHECK(!v->add_headers[1].order);
  CHECK(v->add_headers[2].value == "a");
  CHECK(v->add_headers[2].order == 1);
  CHECK(v->add_headers[3].value == "b");
  REQUIRE(v->remove_headers.size() == 2);
  CHECK(v->remove_headers[0].name == "X-Spam");
  CHECK(v->remove_headers[0].index == 0);
  CHECK(v->remove_headers[1].index == -1);

  auto ham = parse_rspamd_json(
      R"({"is_skipped":false,"score":-0.100000,"required_score":15.0,"action":"no action","symbols":{"MIME_GOOD":)"
      R"({"name":"MIME_GOOD","score":-0.100000,"options":["text/plain"]},"ARC_NA":{"score":0.0}},"messages":{},)"
      R"("subject":"[SPAM] hi"})");
  REQUIRE(ham);
  CHECK(ham->action == "no action");
  CHECK(ham->score == doctest::Approx(-0.1));
  REQUIRE(ham->symbols.size() == 2);
  CHECK(ham->symbols[0].name == "MIME_GOOD");
  CHECK(ham->symbols[0].score == doctest::Approx(-0.1));
  CHECK(ham->symbols[1].name == "ARC_NA");
  CHECK(ham->smtp_message.empty());
  CHECK(ham->subject == "[SPAM] hi");

  for (std::string_view bad : {R"([])", R"({"score":1})", R"({"action":"reject"})", R"({"action":1,"score":1})",
                               R"({"action":"x","score":"1"})", R"({"action":"x","score":1,"symbols":[]})",
                               R"({"action":"x","score":1,"symbols":{"A":1}})",
                               R"({"action":"x","score":1,"symbols":{"A":{"score":"1"}}})",
                               R"({"action":"x","score":1,"milter":{"add_headers":{"X":1}}})",
                               R"({"action":"x","score":1,"milter":{"add_headers":{"X":{"order":1}}}})",
                               R"({"action":"x","score":1,"milter":{"add_headers":{"X":[["a"]]}}})",
                               R"({"action":"x","score":1,"milter":{"remove_headers":{"X":0.5}}})",
                               R"({"action":"x","score":1,"messages":{"smtp_message":2}})", R"({"action":"x","score":1,"is_skipped":1})"})
    CHECK_MESSAGE(parse_rspamd_json(bad).error() == scan_errc::malformed_reply, bad);

  // A document deeper or bigger than the limits.
  rspamd_reply_limits l;
  l.max_depth = 3;
  CHECK(parse_rspamd_json(R"({"action":"x","score":1,"symbols":{"A":{"options":[[1]]}}})", l).error() ==
        scan_errc::reply_too_large);
  l = {};
  l.max_body = 100;
  CHECK(parse_rspamd_json(std::string(R"({"action":"x","score":1,"pad":")") + std::string(100, ' ') + "\"}", l).error() ==
        scan_errc::reply_too_large);
}

TEST_CASE("rspamd reply parser: statuses") {
  struct status_case {
    std::string in;
    std::error_code expected;
  };
  std::vector<status_case> cases = {
      {"HTTP/1.1 500 invalid command\r\nContent-Length: 59\r\n\r\n"
       R"({"error":"invalid command","error_domain":"protocol-error"})",
       make_error_code(scan_errc::scanner_error)},
      {"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", make_error_code(scan_errc::temporarily_unavailable)},
      {"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", make_error_code(scan_errc::size_limit_exceeded)},
      {"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", make_error_code(scan_errc::request_refused)},
      {"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n", make_error_code(scan_errc::malformed_reply)},
      {http_ok("not json"), make_error_code(scan_errc::malformed_reply)},
  };
  for (auto const& c : cases) {
    CAPTURE(c.in);
    rspamd_reply_parser p;
    p.feed(c.in);
    auto r = p.next();
    REQUIRE(!r);
    CHECK(r.error() == c.expected);
  }
  rspamd_reply_parser p;
  p.feed(cases[0].in);
  CHECK(!p.next());
  CHECK(p.status() == 500);
  CHECK(p.error_text() == "invalid command");
}

TEST_CASE("rspamd request head") {
  rspamd_envelope env;
  env.ip = asio::ip::make_address("192.0.2.1");
  env.helo = "mx.example.com";
  env.from = "a@example.com";
  env.rcpts = {"b@example.org", "c@example.org"};
  env.queue_id = "Q1";
  env.user = "alice";
  env.hostname = "mx.example.com";
  env.extra = {{"Settings-Id", "outbound"}};
  CHECK(rspamd_request_head("/checkv2", "127.0.0.1:11333", env, 12).value() ==
        "POST /checkv2 HTTP/1.1\r\nHost: 127.0.0.1:11333\r\nConnection: close\r\nContent-Length: 12\r\n"
        "IP: 192.0.2.1\r\nHelo: mx.example.com\r\nFrom: a@example.com\r\nRcpt: b@example.org\r\nRcpt: c@example.org\r\n"
        "Queue-Id: Q1\r\nUser: alice\r\nHostname: mx.example.com\r\nSettings-Id: outbound\r\n\r\n");
  CHECK(rspamd_request_head("/checkv2", "h", {}, 0).value() ==
        "POST /checkv2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  rspamd_envelope bad;
  bad.rcpts = {"x@y\r\nEvil: 1"};
  CHECK(rspamd_request_head("/checkv2", "h", bad, 0).error() == errc::invalid_argument);
  bad = {};
  bad.extra = {{"Bad Name", "v"}};
  CHECK(rspamd_request_head("/checkv2", "h", bad, 0).error() == errc::invalid_argument);
  CHECK(rspamd_request_head("checkv2", "h", {}, 0).error() == errc::invalid_argument);
}

TEST_CASE("rspamd client: GTUBE rejected; the request as sent") {
  scripted s({http_ok(gtube_json).substr(0, 50), http_ok(gtube_json).substr(50)});
  s.f.pause = 10ms;
  rspamd_envelope env;
  env.ip = asio::ip::make_address("192.0.2.1");
  env.from = "a@example.com";
  env.rcpts = {"b@example.org"};
  std::string const message = "Subject: x\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
  auto v = s.scan(message, env);
  REQUIRE(v);
  CHECK(v->action == "reject");
  CHECK(v->smtp_message == "Gtube pattern");
  auto const& r = s.f.received;
  CHECK(r.starts_with("POST /checkv2 HTTP/1.1\r\nHost: 127.0.0.1:"));
  CHECK(r.find("\r\nContent-Length: " + std::to_string(message.size()) + "\r\n") != std::string::npos);
  CHECK(r.find("\r\nIP: 192.0.2.1\r\nFrom: a@example.com\r\nRcpt: b@example.org\r\n") != std::string::npos);
  CHECK(r.ends_with("\r\n\r\n" + message));
}

TEST_CASE("rspamd client: chunked reply over a unix socket") {
  scripted s({chunked(gtube_json, 16)}, true);
  auto v = s.scan("Subject: x\r\n\r\nhello\r\n");
  REQUIRE(v);
  CHECK(v->score == 15.0);
  CHECK(s.f.received.starts_with("POST /checkv2 HTTP/1.1\r\nHost: localhost\r\n"));
}

TEST_CASE("rspamd client: hostile servers and deadlines") {
  struct exchange {
    char const* name;
    std::vector<std::string> reply;
    std::error_code expected;
  };
  std::string deep = "{\"action\":\"x\",\"score\":1,\"d\":" + std::string(10'000, '[') + std::string(10'000, ']') + "}";
  std::string wide = "[" + std::string(200'000, '0') + "]";
  for (std::size_t i = 2; i < wide.size() - 1; i += 2) wide[i] = ',';
  std::vector<exchange> cases = {
      {"garbage", {"SPAMD/1.1 0 EX_OK\r\n\r\n"}, make_error_code(scan_errc::malformed_reply)},
      {"overlong status line", {std::string(100'000, 'H')}, make_error_code(scan_errc::reply_too_large)},
      {"EOF mid-reply", {http_ok(gtube_json).substr(0, 200)}, make_error_code(net::errc::eof)},
      {"EOF at once", {}, make_error_code(net::errc::eof)},
      {"deep JSON", {http_ok(deep)}, make_error_code(scan_errc::reply_too_large)},
      {"many values", {http_ok(wide)}, make_error_code(scan_errc::reply_too_large)},
      {"huge body", {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"}, make_error_code(scan_errc::reply_too_large)},
      {"endless body", {"HTTP/1.1 200 OK\r\n\r\n" + std::string(5 << 20, ' ')}, make_error_code(scan_errc::reply_too_large)},
  };
  for (auto const& c : cases) {
    CAPTURE(c.name);
    scripted s(c.reply);
    auto v = s.scan("x");
    REQUIRE(!v);
    CHECK(v.error() == c.expected);
  }
  SUBCASE("silence") { CHECK(testing::silent_scan<scripted>() == net::errc::timeout); }
  SUBCASE("over max_size") {
    scripted s({http_ok(gtube_json)});
    s.o.max_size = 3;
    CHECK(s.scan("1234").error() == scan_errc::message_too_large);
  }
}

TEST_CASE("rspamd client: ping") {
  {
    scripted s({"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\npong\r\n"});
    s.f.start();
    rspamd_client c(s.io.get_executor(), s.o, quiet());
    CHECK(testing::run(s.io, c.ping()));
    CHECK(s.f.received.starts_with("GET /ping HTTP/1.1\r\n"));
  }
  {
    scripted s({http_ok("{}")});
    s.f.start();
    rspamd_client c(s.io.get_executor(), s.o, quiet());
    CHECK(testing::run(s.io, c.ping()).error() == scan_errc::malformed_reply);
  }
}
