// The milter client: codec round trips and hostile packets, then whole sessions against a
// scripted fake milter on loopback (TCP and a Unix socket), every protocol flag the client
// honours, deadlines, and applying the changes to a message.
#include <doctest/doctest.h>

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/filter/milter.hpp"
#include "mailroom/net/error.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::filter::milter;
using namespace std::chrono_literals;
namespace mf = mailroom::filter::milter;

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string raw_packet(char c, std::string_view data) {
  std::string out;
  append_packet(out, c, data);
  return out;
}

// Every packet in bytes, framed by packet_reader (which must accept them all).
std::vector<packet> frame(std::string_view bytes, bool byte_at_a_time = false) {
  packet_reader r;
  std::vector<packet> out;
  auto drain = [&] {
    for (;;) {
      auto p = r.next();
      REQUIRE(p);
      if (!*p) return;
      out.push_back(std::move(**p));
    }
  };
  if (byte_at_a_time) {
    for (char c : bytes) {
      r.feed(std::string_view(&c, 1));
      drain();
    }
  } else {
    r.feed(bytes);
    drain();
  }
  CHECK(r.buffered() == 0);
  return out;
}

result<response> decode_bytes(std::string_view bytes) {
  auto ps = frame(bytes);
  REQUIRE(ps.size() == 1);
  return decode_response(ps[0]);
}

// The NUL-separated fields of a command packet's data.
std::vector<std::string> nul_fields(std::string_view d) {
  std::vector<std::string> out;
  while (!d.empty()) {
    auto n = d.find('\0');
    out.emplace_back(d.substr(0, n));
    if (n == std::string_view::npos) break;
    d.remove_prefix(n + 1);
  }
  return out;
}

std::uint32_t nr_flag_for(char c) {
  switch (c) {
    case cmd::connect: return proto::nr_connect;
    case cmd::helo: return proto::nr_helo;
    case cmd::mail: return proto::nr_mail;
    case cmd::rcpt: return proto::nr_rcpt;
    case cmd::data: return proto::nr_data;
    case cmd::header: return proto::nr_header;
    case cmd::eoh: return proto::nr_eoh;
    case cmd::body: return proto::nr_body;
    case cmd::unknown: return proto::nr_unknown;
  }
  return 0;
}

std::string cont() { return encode_response(verdict{}); }

// A scripted milter: answers the negotiation with `neg`, records every other packet, and answers
// each with `answer` (by default continue where a reply is due). Pieces of an answer are written
// `gap` apart.
struct script {
  negotiation neg{6, actions::all, 0, {}};
  std::function<std::vector<std::string>(packet const&, script&)> answer;
  std::chrono::milliseconds gap{0};
  packet offer;
  std::vector<packet> seen;

  std::vector<std::string> respond(packet const& p) {
    if (answer) return answer(p, *this);
    return default_answer(p);
  }
  std::vector<std::string> default_answer(packet const& p) const {
    if (p.command == cmd::body_eob) return {cont()};
    std::uint32_t nr = nr_flag_for(p.command);
    if (nr == 0 || (neg.protocol & nr)) return {};
    return {cont()};
  }
  std::string commands() const {
    std::string s;
    for (auto const& p : seen) s += p.command;
    return s;
  }
  std::vector<packet> of(char c) const {
    std::vector<packet> out;
    for (auto const& p : seen)
      if (p.command == c) out.push_back(p);
    return out;
  }
};

template <class Socket>
task<void> serve(Socket sock, std::shared_ptr<script> sc) {
  for (;;) {
    std::array<char, 4> len;
    if (auto [ec, n] = co_await asio::async_read(sock, asio::buffer(len), use_tuple); ec) co_return;
    std::uint32_t l = 0;
    for (char c : len) l = l << 8 | static_cast<unsigned char>(c);
    std::string body(l, '\0');
    if (auto [ec, n] = co_await asio::async_read(sock, asio::buffer(body), use_tuple); ec) co_return;
    packet p{body[0], body.substr(1)};
    std::vector<std::string> out;
    if (p.command == cmd::optneg) {
      sc->offer = p;
      out.push_back(encode_negotiation(sc->neg));
    } else {
      sc->seen.push_back(p);
      out = sc->respond(p);
    }
    for (auto const& piece : out) {
      if (sc->gap.count() > 0) {
        asio::steady_timer t(sock.get_executor());
        t.expires_after(sc->gap);
        co_await t.async_wait(use_tuple);
      }
      if (auto [ec, n] = co_await asio::async_write(sock, asio::buffer(piece), use_tuple); ec) co_return;
    }
    if (p.command == cmd::quit) co_return;
  }
}

// A fake milter listening on 127.0.0.1 (or a Unix socket) for one connection.
struct harness {
  asio::io_context io;
  std::shared_ptr<script> sc = std::make_shared<script>();
  asio::ip::tcp::acceptor acceptor{io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  client_options opts;

  harness() {
    opts.limits.command = 2s;
    acceptor.async_accept([this](std::error_code ec, asio::ip::tcp::socket s) {
      if (!ec) asio::co_spawn(io, serve(std::move(s), sc), asio::detached);
    });
  }
  // Lets the fake milter read what the client sent last (the QUIT after a session).
  void settle() {
    io.restart();
    for (int i = 0; i < 200 && (sc->seen.empty() || sc->seen.back().command != cmd::quit); ++i) io.run_one_for(10ms);
  }
  std::string spec() const { return "inet:" + std::to_string(acceptor.local_endpoint().port()) + "@127.0.0.1"; }

  // Connects and runs body(client); returns what body returned.
  template <class F>
  auto session(F body) {
    using T = typename std::invoke_result_t<F, client&>::value_type;
    return testing::run(io, [&]() -> task<T> {
      auto c = co_await client::connect(io.get_executor(), spec(), opts);
      REQUIRE(c);
      T out = co_await body(**c);
      co_await (*c)->quit();
      co_return out;
    }());
  }
};

macros conn_macros() { return {{"j", "mx.example"}, {"{daemon_name}", "mailroom"}, {"_", "client [192.0.2.7]"}}; }

// One connection with one message, calling every step once (connect, helo, an unknown
// command, mail, rcpt, data, a header, end of headers, body, end of message).
task<outcome> every_step(client& c) {
  peer const nobody;
  REQUIRE(co_await c.on_connect("h", nobody));
  REQUIRE(co_await c.helo("h"));
  REQUIRE(co_await c.unknown("XYZZY"));
  REQUIRE(co_await c.mail("<a@b>"));
  REQUIRE(co_await c.rcpt("<c@d>"));
  REQUIRE(co_await c.data());
  auto out = co_await send_message(c, "A: b\r\n\r\nx\r\n");
  REQUIRE(out);
  co_return *out;
}

}  // namespace

// ---------------------------------------------------------------- codec

TEST_CASE("packet framing: several packets, byte at a time, and the size limit") {
  std::string bytes = raw_packet('a', "") + raw_packet('h', std::string("X\0y\0", 4)) + raw_packet('b', std::string(70000, 'x'));
  for (bool slow : {false, true}) {
    auto ps = frame(bytes, slow);
    REQUIRE(ps.size() == 3);
    CHECK(ps[0] == packet{'a', ""});
    CHECK(ps[1] == packet{'h', std::string("X\0y\0", 4)});
    CHECK(ps[2].data.size() == 70000);
  }
  // The wire form: length counts the command byte.
  CHECK(raw_packet('c', "ab") == std::string("\0\0\0\3cab", 7));

  packet_reader small(100);
  small.feed(be32(101) + "b");  // announced over the limit: refused before any data arrives
  auto r = small.next();
  REQUIRE(!r);
  CHECK(r.error() == mf::errc::packet_too_large);
  small.feed(raw_packet('c', ""));
  CHECK(small.next().error() == mf::errc::packet_too_large);  // final

  packet_reader huge;
  huge.feed(std::string("\xff\xff\xff\xff", 4));
  CHECK(huge.next().error() == mf::errc::packet_too_large);
  packet_reader zero;
  zero.feed(be32(0));
  CHECK(zero.next().error() == mf::errc::malformed_packet);

  packet_reader partial;
  partial.feed(be32(10) + "hab");
  auto need = partial.next();
  REQUIRE(need);
  CHECK(!*need);
  CHECK(partial.buffered() == 7);
}

TEST_CASE("every response survives encode, frame and decode") {
  std::vector<response> all = {
      verdict{action::continue_, {}},
      verdict{action::accept, {}},
      verdict{action::reject, {}},
      verdict{action::tempfail, {}},
      verdict{action::discard, {}},
      verdict{action::skip, {}},
      verdict{action::connection_failure, {}},
      verdict{action::reply, smtp::reply(554, {5, 7, 1}, "go away")},
      verdict{action::reply, smtp::reply(451, {4, 7, 1}, "try\nlater")},
      modification{modification::kind::add_header, 0, "X-Spam", " yes", false},
      modification{modification::kind::insert_header, 3, "DKIM-Signature", "v=1;\n\tb=xyz", false},
      modification{modification::kind::change_header, 2, "Subject", "", false},
      modification{modification::kind::replace_body, 0, "", std::string("new\r\nbody\0x", 11), false},
      modification{modification::kind::add_rcpt, 0, "<a@example.org>", "", false},
      modification{modification::kind::add_rcpt, 0, "<b@example.org>", "NOTIFY=NEVER", true},
      modification{modification::kind::delete_rcpt, 0, "<c@example.org>", "", false},
      modification{modification::kind::change_from, 0, "<d@example.org>", "", false},
      modification{modification::kind::change_from, 0, "<e@example.org>", "SIZE=10", true},
      modification{modification::kind::quarantine, 0, "", "looks bad", false},
      progress{},
      shutdown_request{},
      symlist{5, "i {auth_type}"},
  };
  for (auto const& r : all) {
    CAPTURE(r.index());
    auto d = decode_bytes(encode_response(r));
    REQUIRE(d);
    CHECK(*d == r);
  }
  // libmilter leaves out empty ESMTP arguments.
  auto par = decode_bytes(raw_packet('2', std::string("<a@b>") + '\0'));
  REQUIRE(par);
  CHECK(std::get<modification>(*par) == modification{modification::kind::add_rcpt, 0, "<a@b>", "", true});
  // A replycode whose text libmilter builds itself, multi-line with CRLF.
  auto d = decode_bytes(raw_packet('y', std::string("550-5.7.1 first\r\n550 5.7.1 second") + '\0'));
  REQUIRE(d);
  CHECK(std::get<verdict>(*d).smtp == smtp::reply(550, {5, 7, 1}, "first\nsecond"));
}

TEST_CASE("hostile responses are refused with a clear error") {
  struct bad {
    std::string bytes;
    mf::errc want;
  };
  std::string const z(1, '\0');
  std::vector<bad> cases = {
      {raw_packet('a', "x"), mf::errc::malformed_packet},                          // data after a bare verdict
      {raw_packet('h', "X-Name" + z + "no nul"), mf::errc::malformed_packet},     // value without its NUL
      {raw_packet('h', "X-Name"), mf::errc::malformed_packet},                    // name without its NUL
      {raw_packet('h', "A" + z + "b" + z + "c"), mf::errc::malformed_packet},     // trailing bytes
      {raw_packet('i', "\0\0\0"), mf::errc::malformed_packet},                     // index truncated
      {raw_packet('m', be32(1) + "Subject" + z), mf::errc::malformed_packet},     // no value
      {raw_packet('+', ""), mf::errc::malformed_packet},
      {raw_packet('2', "<a@b>" + z + "A=1" + z + "x"), mf::errc::malformed_packet},  // a third field
      {raw_packet('l', be32(9) + "i" + z), mf::errc::malformed_packet},           // no such stage
      {raw_packet('y', "250 2.0.0 fine" + z), mf::errc::bad_reply_code},          // not 4xx/5xx
      {raw_packet('y', "hello" + z), mf::errc::bad_reply_code},
      {raw_packet('y', "550-first\r\n451 second" + z), mf::errc::bad_reply_code},  // codes differ
      {raw_packet('y', "550-first" + z), mf::errc::bad_reply_code},                // unfinished
      {raw_packet('y', "650 nope" + z), mf::errc::bad_reply_code},
      {raw_packet('y', "550 no nul"), mf::errc::malformed_packet},
      {raw_packet('z', ""), mf::errc::unknown_command},
      {raw_packet('O', be32(6)), mf::errc::unknown_command},
  };
  for (auto const& c : cases) {
    CAPTURE(c.bytes);
    auto d = decode_bytes(c.bytes);
    REQUIRE(!d);
    CHECK(d.error() == c.want);
  }
}

TEST_CASE("negotiation reply: flags and per-stage macro lists") {
  negotiation n{6, actions::add_headers | actions::set_symlist, proto::no_helo | proto::skip, {}};
  n.macros[static_cast<std::size_t>(stage::connect)] = "j {daemon_name}";
  n.macros[static_cast<std::size_t>(stage::eom)] = "i";
  auto ps = frame(encode_negotiation(n));
  REQUIRE(ps.size() == 1);
  auto d = decode_negotiation(ps[0]);
  REQUIRE(d);
  CHECK(*d == n);

  auto short_one = decode_negotiation(packet{'O', be32(6) + be32(1)});
  CHECK(short_one.error() == mf::errc::malformed_packet);
  auto bad_stage = decode_negotiation(packet{'O', be32(6) + be32(1) + be32(0) + be32(7) + std::string("i\0", 2)});
  CHECK(bad_stage.error() == mf::errc::malformed_packet);
  auto no_nul = decode_negotiation(packet{'O', be32(6) + be32(1) + be32(0) + be32(0) + "j"});
  CHECK(no_nul.error() == mf::errc::malformed_packet);
  CHECK(decode_negotiation(packet{'c', ""}).error() == mf::errc::unexpected_response);
}

TEST_CASE("command encoders: field layout") {
  std::string const z(1, '\0');
  auto one = [](std::string const& bytes) {
    auto ps = frame(bytes);
    REQUIRE(ps.size() == 1);
    return ps[0];
  };
  CHECK(one(encode_optneg(6, 0x1ff, 0x1fffff)) == packet{'O', be32(6) + be32(0x1ff) + be32(0x1fffff)});
  CHECK(one(*encode_connect("client.example", peer{family::inet, 2525, "192.0.2.7"})) ==
        packet{'C', "client.example" + z + "4" + std::string("\x09\xdd", 2) + "192.0.2.7" + z});
  CHECK(one(*encode_connect("h", peer{family::inet6, 25, "2001:db8::1"})) ==
        packet{'C', "h" + z + "6" + std::string("\0\x19", 2) + "2001:db8::1" + z});
  CHECK(one(*encode_connect("localhost", peer{family::unix_socket, 0, "/run/s"})) ==
        packet{'C', "localhost" + z + "L" + std::string("\0\0", 2) + "/run/s" + z});
  CHECK(one(*encode_connect("unknown", peer{})) == packet{'C', "unknown" + z + "U"});
  CHECK(one(*encode_helo("client.example")) == packet{'H', "client.example" + z});
  std::vector<std::string> args = {"SIZE=100", "BODY=8BITMIME"};
  CHECK(one(*encode_mail("<a@example.org>", args)) == packet{'M', "<a@example.org>" + z + "SIZE=100" + z + "BODY=8BITMIME" + z});
  CHECK(one(*encode_rcpt("<b@example.org>", {})) == packet{'R', "<b@example.org>" + z});
  CHECK(one(*encode_header("Subject", "hi")) == packet{'L', "Subject" + z + "hi" + z});
  CHECK(one(*encode_macros('C', conn_macros())).data ==
        "C" + std::string("j") + z + "mx.example" + z + "{daemon_name}" + z + "mailroom" + z + "_" + z + "client [192.0.2.7]" + z);
  CHECK(one(*encode_unknown("XYZZY 1")) == packet{'U', "XYZZY 1" + z});
  for (char c : {cmd::data, cmd::eoh, cmd::body_eob, cmd::abort, cmd::quit, cmd::quit_nc}) CHECK(one(encode_simple(c)) == packet{c, ""});

  // Body: chunks of at most 65535 octets, in order.
  std::string body(65535 * 2 + 10, 'b');
  body[65535] = 'X';
  auto chunks = frame(encode_body(body));
  REQUIRE(chunks.size() == 3);
  CHECK(chunks[0].data.size() == 65535);
  CHECK(chunks[1].data.size() == 65535);
  CHECK(chunks[1].data[0] == 'X');
  CHECK(chunks[2].data.size() == 10);
  CHECK(encode_body("").empty());

  // A NUL inside a field would shift every field after it.
  CHECK(encode_helo(std::string("a\0b", 3)).error() == mailroom::errc::invalid_argument);
  CHECK(encode_header("X", std::string("a\0b", 3)).error() == mailroom::errc::invalid_argument);
  std::vector<std::string> bad_args = {std::string("A\0B", 3)};
  CHECK(encode_rcpt("<x@y>", bad_args).error() == mailroom::errc::invalid_argument);
  CHECK(encode_connect("h", peer{family::inet, 1, std::string("1\0", 2)}).error() == mailroom::errc::invalid_argument);
}

// ---------------------------------------------------------------- sessions

TEST_CASE("a whole SMTP transaction through a milter that continues everywhere") {
  harness h;
  h.sc->neg.macros[static_cast<std::size_t>(stage::connect)] = "j _";
  h.sc->neg.macros[static_cast<std::size_t>(stage::eom)] = "{i}";
  auto o = h.session([](client& c) -> task<outcome> {
    CHECK(c.negotiated().version == 6);
    auto cm = conn_macros();
    peer const p{family::inet, 40000, "192.0.2.7"};
    auto v = co_await c.on_connect("client.example", p, cm);
    REQUIRE(v);
    CHECK(v->act == action::continue_);
    REQUIRE(co_await c.helo("client.example"));
    std::vector<std::string> args = {"SIZE=42"};
    REQUIRE(co_await c.mail("<a@example.org>", args));
    REQUIRE(co_await c.rcpt("<b@example.net>"));
    REQUIRE(co_await c.data());
    macros const eom = {{"i", "QID1"}, {"j", "not asked for"}};
    auto out = co_await send_message(c, "Subject:  two spaces\r\nX-Folded: a\r\n\tb\r\n\r\nbody\r\n", {}, eom);
    REQUIRE(out);
    co_return *out;
  });
  CHECK(o.final.act == action::continue_);
  CHECK(o.changes.empty());
  // The offer: version 6, every action and protocol flag implemented.
  CHECK(h.sc->offer == packet{'O', be32(6) + be32(actions::all) + be32(proto::all)});
  h.settle();
  CHECK(h.sc->commands() == "DCHMRTLLNBDEQ");
  auto connect_macros = nul_fields(h.sc->seen[0].data);
  CHECK(connect_macros == std::vector<std::string>{"Cj", "mx.example", "_", "client [192.0.2.7]"});
  auto eom_macros = nul_fields(h.sc->of('D').back().data);
  CHECK(eom_macros == std::vector<std::string>{"Ei", "QID1"});
  auto headers = h.sc->of('L');
  // No SMFIP_HDR_LEADSPC: leading whitespace goes; folded lines are joined by LF.
  CHECK(nul_fields(headers[0].data) == std::vector<std::string>{"Subject", "two spaces"});
  CHECK(nul_fields(headers[1].data) == std::vector<std::string>{"X-Folded", "a\n\tb"});
  CHECK(h.sc->of('B')[0].data == "body\r\n");
}

TEST_CASE("SMFIP_HDR_LEADSPC: values keep their leading whitespace") {
  harness h;
  h.sc->neg.protocol = proto::header_leadspc;
  auto o = h.session([](client& c) -> task<bool> {
    CHECK(c.leading_space());
    REQUIRE(co_await c.mail("<a@example.org>"));
    REQUIRE(co_await c.header("Subject", "  two"));
    co_return true;
  });
  CHECK(o);
  CHECK(nul_fields(h.sc->of('L')[0].data) == std::vector<std::string>{"Subject", "  two"});
}

TEST_CASE("steps the milter asked to skip are not sent") {
  struct flag_case {
    std::uint32_t flag;
    char command;
  };
  for (auto fc : {flag_case{proto::no_connect, 'C'}, flag_case{proto::no_helo, 'H'}, flag_case{proto::no_mail, 'M'},
                  flag_case{proto::no_rcpt, 'R'}, flag_case{proto::no_data, 'T'}, flag_case{proto::no_headers, 'L'},
                  flag_case{proto::no_eoh, 'N'}, flag_case{proto::no_body, 'B'}, flag_case{proto::no_unknown, 'U'}}) {
    CAPTURE(fc.command);
    harness h;
    h.sc->neg.protocol = fc.flag;
    auto o = h.session(every_step);
    CHECK(o.final.act == action::continue_);
    std::string want = "CHUMRTLNBEQ";
    want.erase(want.find(fc.command), 1);
    h.settle();
    CHECK(h.sc->commands() == want);
  }
}

TEST_CASE("no-reply flags: the command is sent and no answer awaited") {
  for (std::uint32_t flag : {proto::nr_connect, proto::nr_helo, proto::nr_mail, proto::nr_rcpt, proto::nr_data,
                             proto::nr_header, proto::nr_eoh, proto::nr_body, proto::nr_unknown}) {
    CAPTURE(flag);
    harness h;
    h.opts.limits.command = 300ms;  // a wait for an answer that never comes would time out
    h.sc->neg.protocol = flag;
    auto o = h.session(every_step);
    CHECK(o.final.act == action::continue_);
    h.settle();
    CHECK(h.sc->commands() == "CHUMRTLNBEQ");
  }
}

TEST_CASE("SMFIP_SKIP: after a skip no more body is sent; without the flag a skip is an error") {
  for (bool negotiated : {true, false}) {
    CAPTURE(negotiated);
    harness h;
    h.sc->neg.protocol = negotiated ? proto::skip : 0;
    h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
      if (p.command == cmd::body) return {encode_response(verdict{action::skip, {}})};
      return s.default_answer(p);
    };
    std::string body(200000, 'x');
    auto o = h.session([&](client& c) -> task<result<outcome>> {
      REQUIRE(co_await c.mail("<a@b>"));
      std::string const msg = "A: b\r\n\r\n" + body;
      co_return co_await send_message(c, msg);
    });
    if (negotiated) {
      REQUIRE(o);
      CHECK(o->final.act == action::continue_);
      h.settle();
      CHECK(h.sc->commands() == "MLNBEQ");  // one chunk of four, then end of message
    } else {
      REQUIRE(!o);
      CHECK(o.error() == mf::errc::unexpected_response);
    }
  }
}

TEST_CASE("SMFIP_RCPT_REJ: recipients the MTA refused go to the milter only when asked") {
  for (bool negotiated : {true, false}) {
    harness h;
    h.sc->neg.protocol = negotiated ? proto::rcpt_rej : 0;
    h.session([](client& c) -> task<bool> {
      REQUIRE(co_await c.mail("<a@b>"));
      REQUIRE(co_await c.rcpt("<ok@d>"));
      macros const error_mailer = {{"{rcpt_mailer}", "error"}};
      REQUIRE(co_await c.rcpt("<unknown@d>", {}, error_mailer, true));
      co_return true;
    });
    auto rcpts = h.sc->of('R');
    REQUIRE(rcpts.size() == (negotiated ? 2u : 1u));
    if (negotiated) CHECK(nul_fields(rcpts[1].data)[0] == "<unknown@d>");
  }
}

TEST_CASE("verdicts and their scope") {
  harness h;
  h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command == cmd::rcpt && nul_fields(p.data)[0] == "<bad@d>") return {encode_response(verdict{action::reject, {}})};
    if (p.command == cmd::rcpt && nul_fields(p.data)[0] == "<later@d>")
      return {encode_response(verdict{action::reply, smtp::reply(452, {4, 2, 2}, "full")})};
    if (p.command == cmd::mail && nul_fields(p.data)[0] == "<spammer@x>") return {encode_response(verdict{action::discard, {}})};
    if (p.command == cmd::mail && nul_fields(p.data)[0] == "<friend@x>") return {encode_response(verdict{action::accept, {}})};
    return s.default_answer(p);
  };
  h.session([](client& c) -> task<bool> {
    REQUIRE(co_await c.mail("<a@b>"));
    auto bad = co_await c.rcpt("<bad@d>");
    CHECK(bad->act == action::reject);
    auto later = co_await c.rcpt("<later@d>");
    CHECK(later->act == action::reply);
    CHECK(later->smtp == smtp::reply(452, {4, 2, 2}, "full"));
    auto good = co_await c.rcpt("<good@d>");  // a rejected recipient does not end the message
    CHECK(good->act == action::continue_);
    REQUIRE(co_await c.abort());

    auto d = co_await c.mail("<spammer@x>");
    CHECK(d->act == action::discard);
    auto after = co_await c.rcpt("<x@d>");  // nothing sent: the message is settled
    CHECK(after->act == action::discard);
    auto eom = co_await c.end_of_message();
    CHECK(eom->final.act == action::discard);

    auto a = co_await c.mail("<friend@x>");  // a new message starts afresh
    CHECK(a->act == action::accept);
    auto hv = co_await c.header("Subject", "x");
    CHECK(hv->act == action::accept);
    co_return true;
  });
  // ABORT for the first message, nothing after the settled ones but the next MAIL.
  h.settle();
  CHECK(h.sc->commands() == "MRRRAMMQ");
}

TEST_CASE("SMFIR_SETSYMLIST changes a stage's macro list; SMFIR_CONN_FAIL ends the connection") {
  harness h;
  h.sc->neg.actions = actions::set_symlist;
  h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command == cmd::mail) return {encode_response(symlist{static_cast<std::uint32_t>(stage::rcpt), "{rcpt_addr}"}) + cont()};
    if (p.command == cmd::data) return {encode_response(verdict{action::connection_failure, {}})};
    return s.default_answer(p);
  };
  h.session([](client& c) -> task<bool> {
    REQUIRE(co_await c.mail("<a@b>"));
    macros const m = {{"{rcpt_mailer}", "local"}, {"{rcpt_addr}", "c@d"}};
    REQUIRE(co_await c.rcpt("<c@d>", {}, m));
    auto d = co_await c.data();
    CHECK(d->act == action::connection_failure);
    auto later = co_await c.end_of_message();
    CHECK(later->final.act == action::connection_failure);
    peer const nobody;
    auto again = co_await c.on_connect("h", nobody);
    CHECK(again->act == action::connection_failure);
    co_return true;
  });
  h.settle();
  CHECK(h.sc->commands() == "MDRTQ");
  CHECK(nul_fields(h.sc->of('D')[0].data) == std::vector<std::string>{"R{rcpt_addr}", "c@d"});
}

TEST_CASE("a reject at connect settles the whole connection") {
  harness h;
  h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command == cmd::connect) return {encode_response(verdict{action::reply, smtp::reply(554, {5, 7, 1}, "no")})};
    return s.default_answer(p);
  };
  h.session([](client& c) -> task<bool> {
    peer const p{family::inet, 1, "192.0.2.1"};
    auto v = co_await c.on_connect("h", p);
    CHECK(v->act == action::reply);
    auto m = co_await c.mail("<a@b>");
    CHECK(m->act == action::reply);
    CHECK(m->smtp->code == 554);
    co_return true;
  });
  h.settle();
  CHECK(h.sc->commands() == "CQ");
}

TEST_CASE("end of message: modifications in order, progress restarts the deadline") {
  harness h;
  h.opts.limits.end_of_message = 400ms;
  h.sc->gap = 150ms;  // three pieces 150 ms apart: 450 ms, more than one deadline
  h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command != cmd::body_eob) return s.default_answer(p);
    std::string mods = encode_response(modification{modification::kind::add_header, 0, "X-A", "1", false}) +
                       encode_response(modification{modification::kind::replace_body, 0, "", "new ", false}) +
                       encode_response(modification{modification::kind::replace_body, 0, "", "body\n", false}) +
                       encode_response(modification{modification::kind::add_rcpt, 0, "<n@d>", "", false}) +
                       encode_response(modification{modification::kind::quarantine, 0, "", "held", false});
    return {encode_response(progress{}), encode_response(progress{}), mods + encode_response(verdict{action::accept, {}})};
  };
  auto o = h.session([](client& c) -> task<outcome> {
    REQUIRE(co_await c.mail("<a@b>"));
    auto out = co_await send_message(c, "Subject: s\r\n\r\nold\r\n");
    REQUIRE(out);
    co_return *out;
  });
  CHECK(o.final.act == action::accept);
  REQUIRE(o.changes.size() == 5);
  CHECK(o.changes[0].name == "X-A");
  CHECK(o.changes[4].value == "held");
  auto a = apply("Subject: s\r\n\r\nold\r\n", o.changes, false);
  REQUIRE(a);
  CHECK(a->message == "Subject: s\r\nX-A: 1\r\n\r\nnew body\r\n");
  CHECK(a->added_rcpts == std::vector<std::pair<std::string, std::string>>{{"<n@d>", ""}});
  CHECK(a->quarantine == "held");
}

TEST_CASE("protocol violations during a session") {
  struct violation {
    char at;
    std::string bytes;
    std::error_code want;
    std::uint32_t actions = actions::all;
  };
  std::vector<violation> cases = {
      {cmd::mail, encode_response(modification{modification::kind::add_header, 0, "X", "y", false}),
       make_error_code(mf::errc::unexpected_response)},  // a change before end of message
      {cmd::body_eob, encode_response(modification{modification::kind::change_header, 1, "X", "y", false}),
       make_error_code(mf::errc::unexpected_response), actions::add_headers},  // not negotiated
      {cmd::rcpt, encode_response(progress{}), make_error_code(mf::errc::unexpected_response)},
      {cmd::mail, raw_packet('z', ""), make_error_code(mf::errc::unknown_command)},
      {cmd::mail, raw_packet('y', std::string("250 ok\0", 7)), make_error_code(mf::errc::bad_reply_code)},
      {cmd::mail, be32(5u << 20) + "b", make_error_code(mf::errc::packet_too_large)},
      {cmd::mail, encode_response(shutdown_request{}), make_error_code(mf::errc::shutdown)},
      {cmd::mail, encode_response(symlist{0, "j"}), make_error_code(mf::errc::unexpected_response), actions::add_headers},
  };
  for (auto const& v : cases) {
    CAPTURE(v.bytes);
    harness h;
    h.sc->neg.actions = v.actions;
    h.sc->answer = [&](packet const& p, script& s) -> std::vector<std::string> {
      if (p.command == v.at) return {v.bytes};
      return s.default_answer(p);
    };
    auto r = h.session([](client& c) -> task<result<outcome>> {
      auto m = co_await c.mail("<a@b>");
      if (!m) co_return fail(m.error());
      auto r = co_await c.rcpt("<c@d>");
      if (!r) co_return fail(r.error());
      co_return co_await send_message(c, "A: b\r\n\r\n");
    });
    REQUIRE(!r);
    CHECK(r.error() == v.want);
  }
}

TEST_CASE("too many modifications are refused") {
  harness h;
  h.opts.max_modifications = 3;
  h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command != cmd::body_eob) return s.default_answer(p);
    std::string all;
    for (int i = 0; i < 4; ++i) all += encode_response(modification{modification::kind::add_header, 0, "X", "y", false});
    return {all + cont()};
  };
  auto r = h.session([](client& c) -> task<result<outcome>> { co_return co_await c.end_of_message(); });
  CHECK(r.error() == mf::errc::too_many_changes);
}

TEST_CASE("a milter that never answers times out, and the client stays failed") {
  harness h;
  h.opts.limits.command = 200ms;
  h.sc->answer = [](packet const& p, script&) -> std::vector<std::string> { return {}; };
  auto start = std::chrono::steady_clock::now();
  auto r = h.session([](client& c) -> task<result<verdict>> {
    auto v = co_await c.helo("h");
    CHECK(v.error() == net::errc::timeout);
    co_return co_await c.mail("<a@b>");  // no second wait
  });
  CHECK(r.error() == net::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(h.sc->commands() == "H");
  CHECK(failure_verdict(failure_mode::tempfail).act == action::tempfail);
  CHECK(failure_verdict(failure_mode::accept).act == action::continue_);
  CHECK(failure_verdict(failure_mode::reject).act == action::reject);
}

TEST_CASE("a milter that stops answering at negotiation or closes") {
  {
    asio::io_context io;
    asio::ip::tcp::acceptor acc(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::ip::tcp::socket held(io);
    acc.async_accept(held, [](std::error_code) {});
    client_options o;
    o.limits.command = 200ms;
    auto spec = "inet:" + std::to_string(acc.local_endpoint().port()) + "@127.0.0.1";
    auto r = testing::run(io, client::connect(io.get_executor(), spec, o));
    CHECK(r.error() == net::errc::timeout);
  }
  harness h;
  h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command == cmd::helo) throw std::runtime_error("close");  // ends the fake milter's coroutine
    return s.default_answer(p);
  };
  // The fake's exception only ends its coroutine (detached); the client sees the connection close.
  auto r = h.session([](client& c) -> task<result<verdict>> { co_return co_await c.helo("h"); });
  CHECK(r.error() == net::errc::eof);
}

TEST_CASE("negotiation: the milter may not ask for more than was offered") {
  struct ask {
    negotiation n;
    bool ok;
  };
  client_options offer;
  offer.actions = actions::add_headers | actions::change_headers;
  offer.protocol = proto::no_helo | proto::nr_helo;
  for (auto a : {ask{{6, actions::add_headers, proto::no_helo, {}}, true},
                 ask{{2, 0, 0, {}}, true},
                 ask{{7, actions::add_headers, 0, {}}, false},
                 ask{{1, actions::add_headers, 0, {}}, false},
                 ask{{6, actions::change_body, 0, {}}, false},
                 ask{{6, 0, proto::skip, {}}, false}}) {
    CAPTURE(a.n.version);
    harness h;
    h.opts.actions = offer.actions;
    h.opts.protocol = offer.protocol;
    h.sc->neg = a.n;
    auto r = testing::run(h.io, client::connect(h.io.get_executor(), h.spec(), h.opts));
    CHECK(bool(r) == a.ok);
    if (!r) CHECK(r.error() == mf::errc::negotiation_failed);
    CHECK(h.sc->offer == packet{'O', be32(6) + be32(offer.actions) + be32(offer.protocol)});
  }
}

TEST_CASE("a Unix socket milter, and QUIT_NC to reuse the connection") {
  testing::temp_dir dir;
  std::string path = dir.path() + "/milter.sock";
  asio::io_context io;
  asio::local::stream_protocol::acceptor acc(io, asio::local::stream_protocol::endpoint(path));
  auto sc = std::make_shared<script>();
  acc.async_accept([&](std::error_code ec, asio::local::stream_protocol::socket s) {
    if (!ec) asio::co_spawn(io, serve(std::move(s), sc), asio::detached);
  });
  testing::run(io, [&]() -> task<void> {
    std::string const spec = "unix:" + path;
    auto c = co_await client::connect(io.get_executor(), spec, {});
    REQUIRE(c);
    peer const local{family::unix_socket, 0, path}, nobody;
    REQUIRE(co_await (*c)->on_connect("localhost", local));
    REQUIRE(co_await (*c)->mail("<a@b>"));
    REQUIRE(co_await (*c)->quit_nc());
    REQUIRE(co_await (*c)->on_connect("again", nobody));
    co_await (*c)->quit();
  }());
  io.restart();
  for (int i = 0; i < 200 && sc->commands().size() < 6; ++i) io.run_one_for(10ms);
  CHECK(sc->commands() == "CMAKCQ");
}

TEST_CASE("a Unix socket milter that never answers times out") {
  testing::temp_dir dir;
  std::string path = dir.path() + "/silent.sock";
  asio::io_context io;
  asio::local::stream_protocol::acceptor acc(io, asio::local::stream_protocol::endpoint(path));
  asio::local::stream_protocol::socket held(io);
  acc.async_accept(held, [](std::error_code) {});
  client_options o;
  o.limits.command = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto r = testing::run(io, client::connect(io.get_executor(), "unix:" + path, o));
  REQUIRE(!r);
  CHECK(r.error() == net::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("the deadline covers a whole packet, however slowly it arrives") {
  harness h;
  h.opts.limits.command = 300ms;
  h.sc->gap = 100ms;
  h.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command != cmd::helo) return s.default_answer(p);
    std::string const v = cont();
    std::vector<std::string> bytes;
    for (char c : v) bytes.emplace_back(1, c);  // five pieces 100 ms apart: 500 ms in all
    return bytes;
  };
  auto r = h.session([](client& c) -> task<result<verdict>> { co_return co_await c.helo("h"); });
  REQUIRE(!r);
  CHECK(r.error() == net::errc::timeout);

  // Nor do packets that are not the verdict (macro lists, over and over) extend it.
  harness endless;
  endless.opts.limits.command = 300ms;
  endless.sc->neg.actions = actions::set_symlist;
  endless.sc->gap = 50ms;
  endless.sc->answer = [](packet const& p, script& s) -> std::vector<std::string> {
    if (p.command != cmd::helo) return s.default_answer(p);
    return std::vector<std::string>(20, encode_response(symlist{0, "j"}));
  };
  auto e = endless.session([](client& c) -> task<result<verdict>> { co_return co_await c.helo("h"); });
  REQUIRE(!e);
  CHECK(e.error() == net::errc::timeout);
}

TEST_CASE("socket specifications") {
  asio::io_context io;
  for (std::string bad : std::vector<std::string>{"", "inet", "inet:25", "inet:@127.0.0.1", "inet:0@127.0.0.1", "inet:70000@127.0.0.1",
                          "inet:2x@127.0.0.1", "unix:", "tcp:25@127.0.0.1", "inet:25@",
                          // names are never resolved (no deadline there); paths fit sockaddr_un
                          "inet:8891@milter.example", "unix:" + std::string(200, 'x'), "unix:relative"}) {
    CAPTURE(bad);
    auto r = testing::run(io, client::connect(io.get_executor(), bad, {}));
    CHECK(r.error() == mf::errc::bad_socket);
  }
  // Nothing listens there: the caller gets an error to apply its policy to.
  testing::temp_dir dir;
  auto r = testing::run(io, client::connect(io.get_executor(), "unix:" + dir.path() + "/none", {}));
  CHECK(!r);
}

// ---------------------------------------------------------------- applying changes

TEST_CASE("header changes: add, insert, change and delete by index") {
  using k = modification::kind;
  std::string const msg =
      "Received: one\r\nReceived: two\r\nSubject: hello\r\nX-Folded: a\r\n b\r\n\r\nbody\r\n";
  std::vector<modification> mods = {
      {k::insert_header, 0, "X-Top", "first", false},
      {k::change_header, 2, "received", "TWO", false},  // the second Received, any case
      {k::change_header, 1, "Subject", "", false},       // deleted
      {k::change_header, 3, "Received", "three", false}, // no third: appended
      {k::change_header, 1, "X-None", "", false},        // deleting what is not there changes nothing
      {k::add_header, 0, "X-Multi", "line1\n\tline2", false},
      {k::insert_header, 99, "X-End", "past the end", false},
  };
  auto a = apply(msg, mods, false);
  REQUIRE(a);
  CHECK(a->message ==
        "X-Top: first\r\nReceived: one\r\nreceived: TWO\r\nX-Folded: a\r\n b\r\nReceived: three\r\n"
        "X-Multi: line1\r\n\tline2\r\nX-End: past the end\r\n\r\nbody\r\n");
  CHECK(a->headers_changed);
  CHECK(!a->body_replaced);

  // Index 0 of chgheader means 1; with SMFIP_HDR_LEADSPC the value is used as sent.
  std::vector<modification> lead = {{k::change_header, 0, "Subject", "  spaced", false}, {k::add_header, 0, "X-N", "none", false}};
  auto b = apply("Subject: x\r\n\r\n", lead, true);
  REQUIRE(b);
  CHECK(b->message == "Subject:  spaced\r\nX-N:none\r\n\r\n");
}

TEST_CASE("changes that would corrupt the message are refused") {
  using k = modification::kind;
  for (auto m : {modification{k::add_header, 0, "X", "a\r\nBcc: evil@x", false},
                 modification{k::add_header, 0, "X", "a\nBcc: evil@x", false},
                 modification{k::add_header, 0, "X", "a\rb", false},
                 modification{k::add_header, 0, "X", "ends with a break\n", false},
                 modification{k::add_header, 0, "Bad Name", "v", false},
                 modification{k::add_header, 0, "", "v", false},
                 modification{k::insert_header, 0, "X:Y", "v", false},
                 modification{k::change_header, 1, "A b", "", false}}) {
    CAPTURE(m.value);
    std::vector<modification> one = {m};
    auto a = apply("A: b\r\n\r\n", one, false);
    REQUIRE(!a);
    CHECK(a.error() == mf::errc::bad_modification);
  }
}

TEST_CASE("body replacement and envelope changes") {
  using k = modification::kind;
  std::vector<modification> mods = {
      {k::replace_body, 0, "", "line 1\nline 2\r\n", false},
      {k::replace_body, 0, "", "line 3\n", false},
      {k::add_rcpt, 0, "<new@d>", "NOTIFY=NEVER", true},
      {k::delete_rcpt, 0, "<old@d>", "", false},
      {k::change_from, 0, "<bounce@d>", "", false},
  };
  auto a = apply("Subject: x\r\n\r\nold body\r\n", mods, false);
  REQUIRE(a);
  CHECK(a->message == "Subject: x\r\n\r\nline 1\r\nline 2\r\nline 3\r\n");
  CHECK(a->body_replaced);
  CHECK(!a->headers_changed);
  CHECK(a->added_rcpts == std::vector<std::pair<std::string, std::string>>{{"<new@d>", "NOTIFY=NEVER"}});
  CHECK(a->deleted_rcpts == std::vector<std::string>{"<old@d>"});
  CHECK(a->new_sender == std::pair<std::string, std::string>{"<bounce@d>", ""});

  // An empty replacement empties the body; no changes leaves the message byte for byte.
  std::vector<modification> empty = {{k::replace_body, 0, "", "", false}};
  CHECK(apply("A: b\r\n\r\nx\r\n", empty, false)->message == "A: b\r\n\r\n");
  std::string const odd = "A: b\r\nC:d\r\n e\r\n\r\n\r\nbody";
  CHECK(apply(odd, {}, false)->message == odd);
  CHECK(apply("A: b\r\n", {}, false)->message == "A: b\r\n");
}

TEST_CASE("split: header fields and where the body starts") {
  auto s = split("A: 1\r\nB:2\r\n\tmore\r\n\r\nbody\r\nA: not a header\r\n");
  REQUIRE(s.headers.size() == 2);
  CHECK(s.headers[0].name == "A");
  CHECK(s.headers[0].value == " 1");
  CHECK(s.headers[1].value == "2\r\n\tmore");
  CHECK(s.body_offset == 20);
  CHECK(s.blank_line);
  auto none = split("no colon here\r\nX: y\r\n");
  CHECK(none.headers.empty());
  CHECK(none.body_offset == 0);
}
