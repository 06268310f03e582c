// imap::response_parser: responses, literals (kept, streamed, skipped, split across feeds), limits.
#include <doctest/doctest.h>

#include <ostream>
#include <string>
#include <vector>

#include "mailroom/imap/response_parser.hpp"

using namespace mailroom;
using namespace mailroom::imap;

namespace {

/// Feeds `in` in pieces of `piece` octets; collects responses; literals with key "BODY[]" are
/// streamed into `streamed`. Stops at the first error (returned in `err`).
struct run_result {
  std::vector<response> out;
  std::string streamed;
  std::vector<std::uint64_t> literal_sizes;
  std::error_code err;
  std::size_t max_buffered = 0;
};

run_result parse(std::string_view in, std::size_t piece, response_limits lim = {}, literal_mode body_mode = literal_mode::stream) {
  response_parser p(lim);
  run_result r;
  for (std::size_t pos = 0; pos <= in.size(); pos += piece) {
    if (pos < in.size()) p.feed(in.substr(pos, piece));
    for (;;) {
      auto ev = p.next();
      if (!ev) {
        r.err = ev.error();
        return r;
      }
      if (ev->k == response_parser::event::kind::need_more) break;
      if (ev->k == response_parser::event::kind::literal) {
        r.literal_sizes.push_back(ev->literal_size);
        if (ev->in_fetch && ev->key == "BODY[]") p.on_literal(body_mode);
      } else if (ev->k == response_parser::event::kind::literal_data) {
        r.streamed.append(ev->data);
      } else {
        r.out.push_back(std::move(ev->resp));
      }
    }
    r.max_buffered = std::max(r.max_buffered, p.buffered());
    if (pos >= in.size()) break;
  }
  return r;
}

}  // namespace

TEST_CASE("status, data and continuation responses") {
  std::string const in =
      "* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n"
      "* 3 EXISTS\r\n"
      "* OK [UIDVALIDITY 1234] UIDs valid\r\n"
      "* FLAGS (\\Answered \\Seen)\r\n"
      "* LIST (\\HasNoChildren) \"/\" \"a \\\"q\\\"\"\r\n"
      "+ c2VydmVy\r\n"
      "+\r\n"
      "A1 NO [AUTHENTICATIONFAILED] bad (unbalanced\n"
      "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n";
  for (std::size_t piece : {1u, 3u, 7u, 1000u}) {
    auto r = parse(in, piece);
    REQUIRE(!r.err);
    REQUIRE(r.out.size() == 9);
    CHECK(r.out[0].status == "OK");
    CHECK(r.out[0].code == "CAPABILITY IMAP4rev1 IDLE");
    CHECK(r.out[0].text == "ready");
    CHECK(r.out[1].number == 3u);
    CHECK(r.out[1].name == "EXISTS");
    CHECK(r.out[2].code == "UIDVALIDITY 1234");
    CHECK(r.out[3].name == "FLAGS");
    REQUIRE(r.out[3].items.size() == 1);
    CHECK(r.out[3].items[0].items.size() == 2);
    CHECK(r.out[3].items[0].items[1].text == "\\Seen");
    REQUIRE(r.out[4].items.size() == 3);
    CHECK(r.out[4].items[2].text == "a \"q\"");
    CHECK(r.out[5].k == response::kind::continuation);
    CHECK(r.out[5].text == "c2VydmVy");
    CHECK(r.out[6].text.empty());
    CHECK(r.out[7].k == response::kind::tagged);
    CHECK(r.out[7].tag == "A1");
    CHECK(r.out[7].status == "NO");
    CHECK(r.out[7].text == "bad (unbalanced");
    CHECK(r.out[8].items.size() == 2);
  }
}

TEST_CASE("FETCH literals: kept, streamed, skipped, split at every position") {
  std::string const body = "Subject: x\r\n\r\n.dot line\r\n8bit: \xc3\xa9t\xc3\xa9\r\n";
  std::string const in = "* 1 FETCH (UID 7 BODY[HEADER.FIELDS (SUBJECT)] {12}\r\nSubject: x\r\n BODY[] {" +
                         std::to_string(body.size()) + "}\r\n" + body + " FLAGS (\\Seen))\r\nA2 OK done\r\n";
  for (std::size_t piece = 1; piece <= in.size(); piece += (piece < 20 ? 1 : 17)) {
    auto r = parse(in, piece);
    REQUIRE(!r.err);
    REQUIRE(r.out.size() == 2);
    CHECK(r.streamed == body);
    auto const& l = r.out[0].items.at(0).items;
    REQUIRE(l.size() == 8);
    CHECK(l[2].text == "BODY[HEADER.FIELDS (SUBJECT)]");
    CHECK(l[3].text == "Subject: x\r\n");
    CHECK(l[3].literal);
    CHECK(l[5].text.empty());  // streamed out
    CHECK(l[7].items.at(0).text == "\\Seen");
    CHECK(r.literal_sizes == std::vector<std::uint64_t>{12, body.size()});
  }
  auto kept = parse(in, 5, {}, literal_mode::keep);
  REQUIRE(kept.out.size() == 2);
  CHECK(kept.out[0].items[0].items[5].text == body);
  auto skipped = parse(in, 5, {}, literal_mode::discard);
  REQUIRE(skipped.out.size() == 2);
  CHECK(skipped.streamed.empty());
  CHECK(skipped.out[0].items[0].items[5].text.empty());
  CHECK(skipped.out[1].status == "OK");
}

TEST_CASE("a streamed or skipped literal is never buffered whole") {
  std::string big(1 << 20, 'x');
  std::string const in = "* 1 FETCH (BODY[] {" + std::to_string(big.size()) + "}\r\n" + big + ")\r\n";
  response_limits lim;
  lim.max_literal = 2 << 20;
  auto r = parse(in, 4096, lim, literal_mode::discard);
  REQUIRE(!r.err);
  CHECK(r.out.size() == 1);
  CHECK(r.max_buffered <= 4096);
}

TEST_CASE("limits and malformed input are final errors") {
  response_limits lim;
  lim.max_line = 64;
  lim.max_literal = 1000;
  lim.max_depth = 4;
  CHECK(parse(std::string(200, 'a'), 10, lim).err == errc::line_too_long);  // no line end at all
  CHECK(parse("* OK " + std::string(100, 'a') + "\r\n", 1000, lim).err == errc::line_too_long);
  CHECK(parse("* 1 FETCH (BODY[] {4294967296}\r\n", 5, lim).err == errc::literal_too_large);
  CHECK(parse("* 1 FETCH (BODY[] {99999999999999999999999}\r\n", 5, lim).err);
  CHECK(parse("* X ((((((a))))))\r\n", 3, lim).err == errc::nesting_too_deep);
  CHECK(parse("* X (a\r\n", 3, lim).err == errc::malformed_response);
  CHECK(parse("* X a)\r\n", 3, lim).err == errc::malformed_response);
  CHECK(parse("* X \"open\r\n", 3, lim).err == errc::malformed_response);
  CHECK(parse("A1 FETCH x\r\n", 3, lim).err == errc::malformed_response);
  CHECK(parse("\r\n", 3, lim).err == errc::malformed_response);
  CHECK(parse("* X {3} a\r\n", 3, lim).err == errc::malformed_response);
  // Kept literals count against the response's bound.
  std::string many = "* LIST () ";
  for (int i = 0; i < 3; ++i) many += "{900}\r\n" + std::string(900, 'z') + " ";
  CHECK(parse(many + "\r\n", 100, lim).err == errc::response_too_large);
  // Errors stick.
  response_parser p(lim);
  p.feed("garbage\r\n* OK fine\r\n");
  auto e = p.next();
  REQUIRE(!e);
  CHECK(!p.next());
}

TEST_CASE("a literal cut short waits for more; the rest of the line follows it") {
  response_parser p;
  p.feed("* 2 FETCH (BODY[] {10}\r\n12345");
  auto ev = p.next();
  REQUIRE(ev);
  CHECK(ev->k == response_parser::event::kind::literal);
  CHECK(ev->in_fetch);
  ev = p.next();
  REQUIRE(ev);
  CHECK(ev->k == response_parser::event::kind::need_more);
  p.feed("67890 UID 5)\r\n");
  ev = p.next();
  REQUIRE(ev);
  REQUIRE(ev->k == response_parser::event::kind::response);
  CHECK(ev->resp.items[0].items[1].text == "1234567890");
  CHECK(ev->resp.items[0].items[3].text == "5");
}
