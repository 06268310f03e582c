// imap::client against mailroom's own IMAP server (in-memory store, passwd-file auth, TLS) and
// against hostile scripted servers.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <ostream>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/imap/client.hpp"
#include "mailroom/imap/server.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/sasl/client.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

log::logger quiet() { return log::logger(std::make_shared<log::null_sink>(), log::level::off); }

// A hash written by Dovecot's `doveadm pw -s SCRAM-SHA-256 -p pencil` (tests/auth/passwd_file_test.cpp).
constexpr char const* carol_scram =
    "{SCRAM-SHA-256}4096,mefSnsZlq8LJtmmIea1zCw==,fyW3XvDAmD4HZt6WsT4Vt1gBzvflf4gSoOifl6/JoB0=,"
    "XM0hPq3Y6d/hv447AzRWp8jtK/wLD6jHU5g1l2RO8JY=";

struct fixture {
  asio::io_context io;
  blocking_pool pool{2};
  testing::temp_dir dir;
  std::shared_ptr<store::memory::store> st = std::make_shared<store::memory::store>(store::memory::options{false});
  net::tls::key_pair kp = net::tls::generate_self_signed({"imap.test"}).value();
  std::unique_ptr<imap::server> srv;
  asio::ip::tcp::endpoint plain_ep;     // STARTTLS offered, plaintext auth allowed
  asio::ip::tcp::endpoint strict_ep;    // STARTTLS offered, LOGINDISABLED before TLS
  asio::ip::tcp::endpoint implicit_ep;  // port 993 style

  explicit fixture(std::vector<std::string> mechanisms = {"SCRAM-SHA-256", "PLAIN"}, bool with_tls = true) {
    auto pw = dir.path() + "/passwd";
    testing::write_file(pw, std::string("alice:{PLAIN}secret\ncarol:") + carol_scram + "\n");
    st->add_account("alice");
    st->add_account("carol");
    imap::server_options o;
    o.store = st;
    o.auth = auth::passwd_file::open(pw, pool).value();
    o.auth_throttle = testing::fast_throttle();
    o.auth_mechanisms = std::move(mechanisms);
    if (with_tls) o.tls = net::tls::server_context::create(kp).value();
    srv = std::make_unique<imap::server>(io.get_executor(), o, quiet());
    imap::listener_options lo;
    lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    lo.allow_plaintext_auth = true;
    plain_ep = srv->listen(lo).value();
    lo.allow_plaintext_auth = false;
    strict_ep = srv->listen(lo).value();
    if (with_tls) {
      lo.implicit_tls = true;
      implicit_ep = srv->listen(lo).value();
    }
  }

  void put(std::string body, std::string user = "alice") {
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account(user)).value();
      store::append_options o;
      o.internal_date = 1700000000;
      std::string const box = "INBOX";
      auto ap = (co_await a->append(box, o)).value();
      REQUIRE(ap->write(body));
      REQUIRE(co_await ap->commit());
    }());
  }
};

imap::client_options plain_opts(std::string user = "alice", std::string pass = "secret") {
  imap::client_options o;
  o.tls = net::tls::policy::none;
  o.allow_plaintext_auth = true;
  o.user = std::move(user);
  o.password = std::move(pass);
  o.timeout = 10s;
  return o;
}

task<std::unique_ptr<imap::client>> connect(asio::ip::tcp::endpoint ep, imap::client_options const& o) {
  auto ex = co_await asio::this_coro::executor;
  auto s = co_await net::tcp_stream::connect(ex, ep, 5s);
  REQUIRE(s);
  co_return std::make_unique<imap::client>(std::move(*s), o, quiet());
}

/// Logs in with `o` and reports the outcome (and whether TLS was on).
struct login_outcome {
  result<void> r;
  bool tls = false;
  std::string last;
};
login_outcome try_login(fixture& f, asio::ip::tcp::endpoint ep, imap::client_options o) {
  return testing::run(f.io, [&]() -> task<login_outcome> {
    auto c = co_await connect(ep, o);
    login_outcome out;
    out.r = co_await c->login();
    out.tls = c->tls();
    out.last = c->last_response();
    co_await c->logout();
    co_return out;
  }());
}

task<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

/// A second session that APPENDs `msg` to alice's INBOX over IMAP (LITERAL-) and logs out.
task<void> append_over_imap(asio::ip::tcp::endpoint ep, std::string msg) {
  auto ex = co_await asio::this_coro::executor;
  auto s = (co_await net::tcp_stream::connect(ex, ep, 5s)).value();
  s->set_timeouts({5s, 5s});
  std::string const script = "a LOGIN alice secret\r\nb APPEND INBOX {" + std::to_string(msg.size()) + "+}\r\n" + msg +
                             "\r\nc LOGOUT\r\n";
  REQUIRE(co_await s->write(script));
  std::array<char, 4096> buf{};
  std::string got;
  for (;;) {
    auto n = co_await s->read_some(std::span<char>(buf.data(), buf.size()));
    if (!n) break;
    got.append(buf.data(), *n);
  }
  CHECK(got.find("b OK") != std::string::npos);
}

task<void> delayed_append(asio::ip::tcp::endpoint ep) {
  co_await sleep_for(300ms);
  std::string const msg = "Subject: new\r\n\r\nnew mail\r\n";
  co_await append_over_imap(ep, msg);
}

}  // namespace

TEST_CASE("login: LOGIN, AUTHENTICATE PLAIN, AUTHENTICATE SCRAM-SHA-256, refusals") {
  SUBCASE("LOGIN when no AUTH= is offered") {
    fixture f(std::vector<std::string>{});
    auto out = try_login(f, f.plain_ep, plain_opts());
    CHECK(out.r);
    auto bad = try_login(f, f.plain_ep, plain_opts("alice", "wrong"));
    REQUIRE(!bad.r);
    CHECK(bad.r.error() == imap::errc::login_refused);
    CHECK(bad.last.find(" NO ") != std::string::npos);
  }
  SUBCASE("PLAIN (SASL-IR)") {
    fixture f(std::vector<std::string>{"PLAIN"});
    CHECK(try_login(f, f.plain_ep, plain_opts()).r);
    auto bad = try_login(f, f.plain_ep, plain_opts("alice", "wrong"));
    REQUIRE(!bad.r);
    CHECK(bad.r.error() == imap::errc::login_refused);
  }
  SUBCASE("SCRAM-SHA-256") {
    fixture f;
    CHECK(try_login(f, f.plain_ep, plain_opts("carol", "pencil")).r);
    auto bad = try_login(f, f.plain_ep, plain_opts("carol", "crayon"));
    REQUIRE(!bad.r);
    CHECK((bad.r.error() == imap::errc::login_refused || bad.r.error() == sasl::errc::authentication_failed));
  }
  SUBCASE("no plaintext credentials unless allowed") {
    fixture f;
    auto o = plain_opts();
    o.allow_plaintext_auth = false;
    auto out = try_login(f, f.plain_ep, o);
    REQUIRE(!out.r);
    CHECK(out.r.error() == imap::errc::auth_unavailable);
    auto strict = try_login(f, f.strict_ep, plain_opts());  // LOGINDISABLED and no AUTH= before TLS
    REQUIRE(!strict.r);
    CHECK(strict.r.error() == imap::errc::auth_unavailable);
  }
}

TEST_CASE("login: STARTTLS required and opportunistic, implicit TLS") {
  fixture f;
  auto o = plain_opts();
  o.allow_plaintext_auth = false;
  o.tls = net::tls::policy::required;
  auto req = try_login(f, f.strict_ep, o);
  CHECK(req.r);
  CHECK(req.tls);
  o.tls = net::tls::policy::opportunistic;
  auto opp = try_login(f, f.strict_ep, o);
  CHECK(opp.r);
  CHECK(opp.tls);
  auto scram = plain_opts("carol", "pencil");
  scram.tls = net::tls::policy::required;
  CHECK(try_login(f, f.strict_ep, scram).r);

  auto imp = plain_opts();
  imp.implicit_tls = true;
  imp.allow_plaintext_auth = false;
  auto i = try_login(f, f.implicit_ep, imp);
  CHECK(i.r);
  CHECK(i.tls);

  fixture no_tls(std::vector<std::string>{"PLAIN"}, false);
  o.tls = net::tls::policy::required;
  o.allow_plaintext_auth = true;
  auto missing = try_login(no_tls, no_tls.plain_ep, o);
  REQUIRE(!missing.r);
  CHECK(missing.r.error() == imap::errc::starttls_unavailable);
  o.tls = net::tls::policy::opportunistic;
  auto plain = try_login(no_tls, no_tls.plain_ep, o);
  CHECK(plain.r);
  CHECK(!plain.tls);
}

TEST_CASE("select, list_from (with the n:* corner case), fetch exact bytes, too_large, remove") {
  fixture f;
  std::string const m1 = "Subject: one\r\n\r\nfirst\r\n.\r\n..two dots\r\n";
  std::string const m2 = "Subject: two\r\nContent-Transfer-Encoding: 8bit\r\n\r\nd\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac\r\n";
  std::string const m3 = "Subject: three\r\n\r\n" + std::string(100000, 'z') + "\r\n";
  f.put(m1);
  f.put(m2);
  f.put(m3);
  testing::run(f.io, [&]() -> task<void> {
    auto const alice = plain_opts();
    auto c = co_await connect(f.plain_ep, alice);
    REQUIRE(co_await c->login());
    std::string const nowhere = "Nowhere", inbox = "INBOX";
    auto missing = co_await c->select(nowhere, false);
    REQUIRE(!missing);
    CHECK(missing.error() == imap::errc::command_failed);
    auto st = co_await c->select(inbox, false);
    REQUIRE(st);
    CHECK(st->exists == 3);
    CHECK(st->uidnext == 4);
    CHECK(st->uidvalidity != 0);

    auto all = co_await c->list_from(1);
    REQUIRE(all);
    REQUIRE(all->size() == 3);
    CHECK((*all)[0].uid == 1);
    CHECK((*all)[0].size == m1.size());
    CHECK((*all)[1].size == m2.size());
    CHECK((*all)[2].uid == 3);
    CHECK((*all)[2].size == m3.size());
    auto tail = co_await c->list_from(3);
    REQUIRE(tail);
    REQUIRE(tail->size() == 1);
    CHECK(tail->front().uid == 3);
    auto none = co_await c->list_from(10);  // the server answers "10:*" with message 3: filtered
    REQUIRE(none);
    CHECK(none->empty());

    auto b1 = co_await c->fetch(1, 1 << 20);
    REQUIRE(b1);
    CHECK(*b1 == m1);
    auto b2 = co_await c->fetch(2, 1 << 20);
    REQUIRE(b2);
    CHECK(*b2 == m2);
    auto big = co_await c->fetch(3, 1000);
    REQUIRE(!big);
    CHECK(big.error() == imap::errc::too_large);
    auto b3 = co_await c->fetch(3, m3.size());  // still usable; exactly at the limit is fine
    REQUIRE(b3);
    CHECK(*b3 == m3);
    auto gone = co_await c->fetch(77, 1 << 20);
    REQUIRE(!gone);
    CHECK(gone.error() == imap::errc::no_such_message);

    std::vector<std::uint32_t> const doomed{3, 1};
    REQUIRE(co_await c->remove(doomed));
    CHECK(c->state().exists == 1);
    co_await c->logout();

    auto d = co_await connect(f.plain_ep, alice);
    REQUIRE(co_await d->login());
    auto st2 = co_await d->select(inbox, true);
    REQUIRE(st2);
    CHECK(st2->exists == 1);
    auto left = co_await d->list_from(1);
    REQUIRE(left);
    REQUIRE(left->size() == 1);
    CHECK(left->front().uid == 2);
    co_await d->logout();

    // An empty mailbox: nothing to list.
    auto const carol = plain_opts("carol", "pencil");
    auto e = co_await connect(f.plain_ep, carol);
    REQUIRE(co_await e->login());
    auto st3 = co_await e->select(inbox, false);
    REQUIRE(st3);
    CHECK(st3->exists == 0);
    auto empty = co_await e->list_from(1);
    REQUIRE(empty);
    CHECK(empty->empty());
    co_await e->logout();
  }());
}

TEST_CASE("idle: woken by an APPEND from another session; times out") {
  fixture f;
  f.put("Subject: first\r\n\r\nx\r\n");
  testing::run(f.io, [&]() -> task<void> {
    auto const alice = plain_opts();
    auto c = co_await connect(f.plain_ep, alice);
    REQUIRE(co_await c->login());
    std::string const inbox = "INBOX";
    REQUIRE(co_await c->select(inbox, false));
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, delayed_append(f.plain_ep), asio::detached);
    auto const t0 = std::chrono::steady_clock::now();
    auto woke = co_await c->idle(20s);
    REQUIRE(woke);
    CHECK(*woke);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    auto l = co_await c->list_from(2);
    REQUIRE(l);
    CHECK(l->size() == 1);

    auto const t1 = std::chrono::steady_clock::now();
    auto quiet_idle = co_await c->idle(1s);
    REQUIRE(quiet_idle);
    CHECK(!*quiet_idle);
    auto const took = std::chrono::steady_clock::now() - t1;
    CHECK(took >= 900ms);
    CHECK(took < 5s);
    // The session is still in step after DONE.
    auto again = co_await c->list_from(1);
    REQUIRE(again);
    CHECK(again->size() == 2);
    co_await c->logout();
  }());
}

// ---- hostile scripted servers -------------------------------------------------------------------

namespace {

using script_fn = std::function<task<void>(net::stream&, net::line_reader&)>;

/// Accepts one connection on 127.0.0.1 and runs a script on it, then closes.
struct fake_server {
  asio::ip::tcp::acceptor acc;
  asio::ip::tcp::endpoint ep;

  explicit fake_server(asio::io_context& io)
      : acc(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), ep(acc.local_endpoint()) {}

  void run(script_fn script) { asio::co_spawn(acc.get_executor(), serve(&acc, std::move(script)), asio::detached); }

  static task<void> serve(asio::ip::tcp::acceptor* acc, script_fn script) {
    auto [ec, sock] = co_await acc->async_accept(use_tuple);
    if (ec) co_return;
    auto s = std::make_unique<net::tcp_stream>(std::move(sock));
    s->set_timeouts({20s, 20s});
    net::line_reader r(1 << 20);
    co_await script(*s, r);
    s->close();
  }
};

/// Greets with `greeting`, answers the first command with `reply`, then waits `linger` and closes.
result<void> against(std::string greeting, std::string reply, std::chrono::seconds client_timeout = 5s,
                     std::chrono::milliseconds linger = 0ms) {
  asio::io_context io;
  fake_server fs(io);
  fs.run([&](net::stream& s, net::line_reader& r) -> task<void> {
    if (!greeting.empty()) (void)co_await s.write(greeting);
    if (!reply.empty()) {
      auto l = co_await r.read_line(s);
      if (l) (void)co_await s.write(reply);
    }
    co_await sleep_for(linger);
  });
  return testing::run(io, [&]() -> task<result<void>> {
    auto o = plain_opts();
    o.timeout = client_timeout;
    auto c = co_await connect(fs.ep, o);
    auto r = co_await c->login();
    co_await c->logout();
    co_return r;
  }());
}

}  // namespace

TEST_CASE("hostile servers: errors, never crashes or unbounded memory") {
  auto r = against("* OK " + std::string(200000, 'a') + "\r\n", "");
  REQUIRE(!r);
  CHECK(r.error() == imap::errc::line_too_long);

  r = against("* OK hi\r\n", "* CAPABILITY IMAP4rev1 {4294967296}\r\n");
  REQUIRE(!r);
  CHECK(r.error() == imap::errc::literal_too_large);

  r = against("* OK hi\r\n", "* CAPABILITY IMAP4rev1 AUTH=PLAIN X-LIT {100}\r\nonly a few octets");
  REQUIRE(!r);
  CHECK(r.error() == net::errc::eof);

  r = against("* OK hi\r\n", "HTTP/1.1 400 Bad Request\r\n\r\n");
  REQUIRE(!r);
  CHECK(r.error() == imap::errc::malformed_response);

  r = against("* OK hi\r\n", "B9 OK not your tag\r\n");
  REQUIRE(!r);
  CHECK(r.error() == imap::errc::malformed_response);

  r = against("* BYE go away\r\n", "");
  REQUIRE(!r);
  CHECK(r.error() == imap::errc::server_closed);

  auto const t0 = std::chrono::steady_clock::now();
  r = against("", "", 1s, 3000ms);  // silence
  REQUIRE(!r);
  CHECK(r.error() == net::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 < 2900ms);
}
