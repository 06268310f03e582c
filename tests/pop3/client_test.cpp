// pop3::client against mailroom's own POP3 server (memory store, memory auth backend, TLS) and
// against scripted hostile servers.
#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/auth/backend.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/pop3/client.hpp"
#include "mailroom/pop3/server.hpp"
#include "mailroom/sasl/server.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

/// Keeps every record as "message key=value ..." (to see which mechanism logged in).
struct capture_sink final : log::sink {
  std::mutex m;
  std::vector<std::string> lines;
  void write(log::record const& r) noexcept override {
    std::string s(r.message);
    for (auto const& f : r.fields) s += " " + std::string(f.key) + "=" + f.value;
    std::lock_guard lock(m);
    lines.push_back(std::move(s));
  }
  bool has(std::string const& what) {
    std::lock_guard lock(m);
    for (auto const& l : lines)
      if (l == what) return true;
    return false;
  }
};

struct server_setup {
  bool tls = true;             ///< STLS offered (and implicit TLS possible)
  bool implicit_tls = false;   ///< the listener speaks TLS from the first byte
  bool allow_plaintext = false;
  std::vector<std::string> mechanisms = {"SCRAM-SHA-256", "PLAIN"};
};

struct fixture {
  asio::io_context io;
  std::shared_ptr<store::memory::store> st = std::make_shared<store::memory::store>();
  std::shared_ptr<auth::memory_backend> users = std::make_shared<auth::memory_backend>();
  net::tls::key_pair kp = net::tls::generate_self_signed({"pop.test"}).value();
  std::unique_ptr<pop3::server> srv;
  asio::ip::tcp::endpoint ep;

  explicit fixture(server_setup setup = {}) {
    users->add_user("alice", "wonder,land");
    pop3::server_options o;
    o.store = st;
    o.auth = users;
    o.auth_mechanisms = setup.mechanisms;
    o.auth_throttle = testing::fast_throttle();
    if (setup.tls) o.tls = net::tls::server_context::create(kp).value();
    srv = std::make_unique<pop3::server>(io.get_executor(), o,
                                         log::logger(std::make_shared<log::null_sink>(), log::level::off));
    pop3::listener_options lo;
    lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    lo.implicit_tls = setup.implicit_tls;
    lo.allow_plaintext_auth = setup.allow_plaintext;
    ep = srv->listen(lo).value();
  }

  void put(std::string body) {
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      store::append_options o;
      auto ap = (co_await a->append("INBOX", o)).value();
      REQUIRE(ap->write(body));
      REQUIRE(co_await ap->commit());
    }());
  }

  std::uint32_t count() {
    return testing::run(io, [&]() -> task<std::uint32_t> {
      auto a = (co_await st->open_account("alice")).value();
      co_return (co_await a->status("INBOX")).value().messages;
    }());
  }
};

log::logger test_logger() {
  return log::logger(std::make_shared<log::stderr_sink>(), std::getenv("MR_TRACE") ? log::level::trace : log::level::off);
}

pop3::client_options alice(net::tls::policy p = net::tls::policy::required, std::string password = "wonder,land") {
  pop3::client_options o;
  o.tls = p;
  o.user = "alice";
  o.password = std::move(password);
  o.tls_name = "pop.test";
  return o;
}

/// Connects and logs in; the client is returned whatever login() said.
struct session {
  std::unique_ptr<pop3::client> c;
  result<void> login;
};

task<session> open(asio::ip::tcp::endpoint ep, pop3::client_options o, log::logger l) {
  auto ex = co_await asio::this_coro::executor;
  auto s = co_await net::tcp_stream::connect(ex, ep, 5s);
  REQUIRE(s);
  session out;
  out.c = std::make_unique<pop3::client>(std::move(*s), std::move(o), std::move(l));
  out.login = co_await out.c->login();
  co_return out;
}

session login(fixture& f, pop3::client_options o, log::logger l = test_logger()) {
  return testing::run(f.io, open(f.ep, std::move(o), std::move(l)));
}

template <class T>
T run(fixture& f, task<T> t) {
  return testing::run(f.io, std::move(t));
}

// ---- scripted servers --------------------------------------------------------------------------

using script_fn = std::function<task<void>(net::stream&, net::line_reader&)>;

/// A peer that accepts one connection on 127.0.0.1 and runs a script on it, then closes.
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

task<std::string> line(net::stream& s, net::line_reader& r) {
  auto l = co_await r.read_line(s);
  if (!l) co_return std::string("<eof>");
  co_return std::string(l->text);
}

/// True when the client's next line is `want` (or starts with it, with `prefix`).
task<bool> expect(net::stream& s, net::line_reader& r, std::string_view want, bool prefix = false) {
  std::string const got = co_await line(s, r);
  co_return prefix ? got.starts_with(want) : got == want;
}

/// Greeting, CAPA refused (an RFC 1939-only server), USER/PASS accepted.
task<bool> scripted_login(net::stream& s, net::line_reader& r) {
  (void)co_await s.write("+OK ready\r\n");
  if (bool const ok = co_await expect(s, r, "CAPA"); !ok) co_return false;
  (void)co_await s.write("-ERR no CAPA here\r\n");
  if (bool const ok = co_await expect(s, r, "USER u"); !ok) co_return false;
  (void)co_await s.write("+OK\r\n");
  if (bool const ok = co_await expect(s, r, "PASS p"); !ok) co_return false;
  (void)co_await s.write("+OK logged in\r\n");
  co_return true;
}

pop3::client_options scripted_options(std::chrono::seconds timeout = 5s) {
  pop3::client_options o;
  o.tls = net::tls::policy::none;
  o.allow_plaintext_auth = true;
  o.user = "u";
  o.password = "p";
  o.timeout = timeout;
  return o;
}

/// Runs `script` on a fake server, then `steps` on a client connected to it.
template <class Steps>
void against(script_fn script, pop3::client_options o, Steps steps) {
  asio::io_context io;
  fake_server fs(io);
  fs.run(std::move(script));
  testing::run(io, [&]() -> task<void> {
    auto ex = co_await asio::this_coro::executor;
    auto s = co_await net::tcp_stream::connect(ex, fs.ep, 5s);
    REQUIRE(s);
    pop3::client c(std::move(*s), o, test_logger());
    co_await steps(c);
  }());
}

}  // namespace

TEST_CASE("client: login by USER/PASS, AUTH PLAIN, AUTH SCRAM-SHA-256 as CAPA offers; a wrong password") {
  struct variant {
    std::vector<std::string> offered;
    std::string used;
  };
  for (auto const& v : std::vector<variant>{{{}, "USER"},
                                            {{"PLAIN"}, "PLAIN"},
                                            {{"SCRAM-SHA-256"}, "SCRAM-SHA-256"},
                                            {{"PLAIN", "SCRAM-SHA-256"}, "SCRAM-SHA-256"}}) {
    CAPTURE(v.used);
    server_setup setup;
    setup.mechanisms = v.offered;
    fixture f(setup);
    auto sink = std::make_shared<capture_sink>();
    auto s = login(f, alice(), log::logger(sink, log::level::info));
    REQUIRE(s.login);
    CHECK(s.c->tls());
    CHECK(s.c->capa().sasl == v.offered);
    CHECK(s.c->capa().user);
    CHECK(sink->has("authenticated mechanism=" + v.used));
    CHECK(run(f, s.c->quit()));

    auto bad = login(f, alice(net::tls::policy::required, "wrong"));
    REQUIRE(!bad.login);
    CHECK(bad.login.error() == pop3::errc::auth_failed);
    CHECK(bad.c->last_response().starts_with("-ERR"));
    CHECK(run(f, bad.c->quit()));  // still in the AUTHORIZATION state; QUIT works
  }
}

TEST_CASE("client: STLS under required, opportunistic, verify; servers without STLS") {
  {
    fixture f;
    for (auto p : {net::tls::policy::required, net::tls::policy::opportunistic}) {
      auto s = login(f, alice(p));
      REQUIRE(s.login);
      CHECK(s.c->tls());
      CHECK(s.c->capa().user);  // CAPA again after TLS: USER is offered only over TLS here
      CHECK(!s.c->capa().stls);
    }
    auto trusting = net::tls::client_context::create_with_trust(net::tls::verify_mode::required, f.kp.cert_pem).value();
    auto o = alice(net::tls::policy::verify);
    o.tls_context = trusting;
    auto s = login(f, o);
    REQUIRE(s.login);
    CHECK(s.c->tls());
    o.tls_name = "other.test";  // the certificate does not name it
    s = login(f, o);
    CHECK(!s.login);
    CHECK(!s.c->tls());
    o.tls_name.clear();
    s = login(f, o);
    REQUIRE(!s.login);
    CHECK(s.login.error() == mailroom::errc::invalid_argument);
  }
  {
    server_setup plain;
    plain.tls = false;
    plain.allow_plaintext = true;
    fixture f(plain);
    auto s = login(f, alice(net::tls::policy::required));
    REQUIRE(!s.login);
    CHECK(s.login.error() == pop3::errc::stls_unavailable);
    s = login(f, alice(net::tls::policy::opportunistic));
    REQUIRE(!s.login);  // credentials never go out in plaintext unless allowed
    CHECK(s.login.error() == pop3::errc::auth_unavailable);
    auto o = alice(net::tls::policy::opportunistic);
    o.allow_plaintext_auth = true;
    s = login(f, o);
    REQUIRE(s.login);
    CHECK(!s.c->tls());
    o.tls = net::tls::policy::none;
    s = login(f, o);
    REQUIRE(s.login);
    CHECK(!s.c->tls());
  }
}

TEST_CASE("client: implicit TLS (port 995 style)") {
  server_setup setup;
  setup.implicit_tls = true;
  fixture f(setup);
  f.put("Subject: hi\r\n\r\nbody\r\n");
  auto o = alice(net::tls::policy::none);  // the policy does not turn implicit TLS off
  o.implicit_tls = true;
  auto s = login(f, o);
  REQUIRE(s.login);
  CHECK(s.c->tls());
  auto l = run(f, s.c->list());
  REQUIRE(l);
  CHECK(l->size() == 1);
  auto m = run(f, s.c->retrieve(1, 1000));
  REQUIRE(m);
  CHECK(*m == "Subject: hi\r\n\r\nbody\r\n");
  CHECK(run(f, s.c->quit()));
}

TEST_CASE("client: list and retrieve; dot-stuffed lines and bare LF; limits; -ERR keeps the session") {
  fixture f;
  std::string const dotted = "Subject: dots\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n";
  f.put(dotted);
  f.put("Subject: lf\n\nline one\nline two\n");
  auto s = login(f, alice());
  REQUIRE(s.login);
  auto l = run(f, s.c->list());
  REQUIRE(l);
  REQUIRE(l->size() == 2);
  CHECK((*l)[0].number == 1);
  CHECK((*l)[1].number == 2);
  CHECK((*l)[0].size == dotted.size());
  CHECK(!(*l)[0].uidl.empty());
  CHECK((*l)[0].uidl != (*l)[1].uidl);

  auto m1 = run(f, s.c->retrieve(1, 1 << 20));
  REQUIRE(m1);
  CHECK(*m1 == dotted);
  auto m2 = run(f, s.c->retrieve(2, 1 << 20));
  REQUIRE(m2);
  CHECK(*m2 == "Subject: lf\r\n\r\nline one\r\nline two\r\n");

  auto none = run(f, s.c->retrieve(7, 1 << 20));
  REQUIRE(!none);
  CHECK(none.error() == pop3::errc::refused);
  CHECK(s.c->last_response().starts_with("-ERR"));
  auto again = run(f, s.c->retrieve(1, dotted.size()));  // exactly the limit
  REQUIRE(again);
  CHECK(*again == dotted);

  auto big = run(f, s.c->retrieve(1, 10));
  REQUIRE(!big);
  CHECK(big.error() == pop3::errc::too_large);
  auto after = run(f, s.c->list());  // the connection was closed, not drained
  REQUIRE(!after);
  CHECK(after.error() == std::errc::not_connected);
}

TEST_CASE("client: DELE then QUIT deletes; without QUIT nothing is deleted") {
  fixture f;
  f.put("a\r\n");
  f.put("b\r\n");
  f.put("c\r\n");
  auto s = login(f, alice());
  REQUIRE(s.login);
  auto before = run(f, s.c->list()).value();
  REQUIRE(before.size() == 3);
  CHECK(run(f, s.c->dele(2)));
  auto twice = run(f, s.c->dele(2));
  REQUIRE(!twice);
  CHECK(twice.error() == pop3::errc::refused);
  CHECK(run(f, s.c->quit()));
  CHECK(f.count() == 2);
  auto q = run(f, s.c->quit());
  CHECK(!q);  // closed already

  s = login(f, alice());
  REQUIRE(s.login);
  auto now = run(f, s.c->list()).value();
  REQUIRE(now.size() == 2);
  CHECK(now[0].uidl == before[0].uidl);
  CHECK(now[1].uidl == before[2].uidl);
  CHECK(run(f, s.c->dele(1)));
  s.c.reset();  // dropped without QUIT
  CHECK(f.count() == 2);
}

TEST_CASE("client vs hostile servers: errors, never crashes or unbounded memory") {
  SUBCASE("garbage instead of +OK") {
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          (void)co_await s.write("HTTP/1.1 400 Bad Request\r\n\r\n");
          (void)co_await line(s, r);
        },
        scripted_options(), [](pop3::client& c) -> task<void> {
          auto l = co_await c.login();
          REQUIRE(!l);
          CHECK(l.error() == pop3::errc::malformed_response);
          auto q = co_await c.quit();
          CHECK(!q);
        });
  }
  SUBCASE("a -ERR greeting") {
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          (void)co_await s.write("-ERR go away\r\n");
          (void)co_await line(s, r);
        },
        scripted_options(), [](pop3::client& c) -> task<void> {
          auto l = co_await c.login();
          REQUIRE(!l);
          CHECK(l.error() == pop3::errc::refused);
          CHECK(c.last_response() == "-ERR go away");
        });
  }
  SUBCASE("an overlong greeting without a line end") {
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          std::string const chunk(64 * 1024, 'x');
          (void)co_await s.write("+OK ");
          for (int i = 0; i < 16; ++i) {
            auto w = co_await s.write(chunk);
            if (!w) break;
          }
          (void)co_await line(s, r);
        },
        scripted_options(), [](pop3::client& c) -> task<void> {
          auto l = co_await c.login();
          REQUIRE(!l);
          CHECK(l.error() == pop3::errc::line_too_long);
        });
  }
  SUBCASE("an overlong listing line") {
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          if (bool const in = co_await scripted_login(s, r); !in) co_return;
          (void)co_await line(s, r);
          std::string const listing = "+OK\r\n1 " + std::string(100000, 'u') + "\r\n.\r\n";
          (void)co_await s.write(listing);
          (void)co_await line(s, r);
        },
        scripted_options(), [](pop3::client& c) -> task<void> {
          REQUIRE(co_await c.login());
          auto l = co_await c.list();
          REQUIRE(!l);
          CHECK(l.error() == pop3::errc::line_too_long);
        });
  }
  SUBCASE("EOF in the middle of RETR") {
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          if (bool const in = co_await scripted_login(s, r); !in) co_return;
          if (bool const ok = co_await expect(s, r, "RETR 1"); !ok) co_return;
          (void)co_await s.write("+OK 100 octets\r\nSubject: cut\r\n\r\nhalf a li");
        },
        scripted_options(), [](pop3::client& c) -> task<void> {
          REQUIRE(co_await c.login());
          auto m = co_await c.retrieve(1, 1000);
          REQUIRE(!m);
          CHECK(m.error() == net::errc::eof);
        });
  }
  SUBCASE("a message without its final dot: the server closes, or goes silent") {
    for (bool close : {true, false}) {
      CAPTURE(close);
      against(
          [close](net::stream& s, net::line_reader& r) -> task<void> {
            if (bool const in = co_await scripted_login(s, r); !in) co_return;
            if (bool const ok = co_await expect(s, r, "RETR 1"); !ok) co_return;
            (void)co_await s.write("+OK\r\nSubject: x\r\n\r\nbody\r\n");
            if (!close) (void)co_await line(s, r);  // until the client gives up
          },
          scripted_options(1s), [close](pop3::client& c) -> task<void> {
            REQUIRE(co_await c.login());
            auto m = co_await c.retrieve(1, 1000);
            REQUIRE(!m);
            CHECK(m.error() == (close ? make_error_code(net::errc::eof) : make_error_code(net::errc::timeout)));
          });
    }
  }
  SUBCASE("a server that never answers, and one that trickles its greeting") {
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> { (void)co_await line(s, r); }, scripted_options(1s),
        [](pop3::client& c) -> task<void> {
          auto l = co_await c.login();
          REQUIRE(!l);
          CHECK(l.error() == net::errc::timeout);
        });
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          asio::steady_timer t(s.get_executor());
          for (int i = 0; i < 40; ++i) {  // a byte every 100 ms: each read is quick, the line never ends
            auto w = co_await s.write("x");
            if (!w) co_return;
            t.expires_after(100ms);
            co_await t.async_wait(use_tuple);
          }
        },
        scripted_options(1s), [](pop3::client& c) -> task<void> {
          auto const t0 = std::chrono::steady_clock::now();
          auto l = co_await c.login();
          REQUIRE(!l);
          CHECK(l.error() == net::errc::timeout);
          CHECK(std::chrono::steady_clock::now() - t0 < 3s);
        });
  }
  SUBCASE("no UIDL; LIST and UIDL that disagree; a malformed listing") {
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          if (bool const in = co_await scripted_login(s, r); !in) co_return;
          if (bool const ok = co_await expect(s, r, "UIDL"); !ok) co_return;
          (void)co_await s.write("-ERR unsupported\r\n");
          if (bool const ok = co_await expect(s, r, "UIDL"); !ok) co_return;
          (void)co_await s.write("+OK\r\n1 aaa\r\n2 bbb\r\n.\r\n");
          if (bool const ok = co_await expect(s, r, "LIST"); !ok) co_return;
          (void)co_await s.write("+OK\r\n1 10\r\n3 20\r\n.\r\n");
          (void)co_await line(s, r);
        },
        scripted_options(), [](pop3::client& c) -> task<void> {
          REQUIRE(co_await c.login());
          auto a = co_await c.list();
          REQUIRE(!a);
          CHECK(a.error() == pop3::errc::no_uidl);
          auto b = co_await c.list();
          REQUIRE(!b);
          CHECK(b.error() == pop3::errc::protocol_error);
        });
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          if (bool const in = co_await scripted_login(s, r); !in) co_return;
          if (bool const ok = co_await expect(s, r, "UIDL"); !ok) co_return;
          (void)co_await s.write("+OK\r\nnot a listing\r\n.\r\n");
          (void)co_await line(s, r);
        },
        scripted_options(), [](pop3::client& c) -> task<void> {
          REQUIRE(co_await c.login());
          auto a = co_await c.list();
          REQUIRE(!a);
          CHECK(a.error() == pop3::errc::malformed_response);
        });
  }
  SUBCASE("a SCRAM server that says +OK without proving it knows the password") {
    auto o = scripted_options();
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          (void)co_await s.write("+OK ready\r\n");
          if (bool const ok = co_await expect(s, r, "CAPA"); !ok) co_return;
          (void)co_await s.write("+OK\r\nUSER\r\nSASL SCRAM-SHA-256 PLAIN\r\n.\r\n");
          if (bool const ok = co_await expect(s, r, "AUTH SCRAM-SHA-256 ", true); !ok) co_return;
          (void)co_await s.write("+OK sure\r\n");
          (void)co_await line(s, r);
        },
        o, [](pop3::client& c) -> task<void> {
          auto l = co_await c.login();
          REQUIRE(!l);
          CHECK(l.error() == sasl::errc::authentication_failed);
        });
  }
  SUBCASE("plaintext sent along with the +OK to STLS is not read after the handshake") {
    // The handshake fails (the fake server speaks no TLS); what matters is that the injected
    // "+OK" is never taken as the TLS session's greeting.
    auto o = scripted_options(2s);
    o.tls = net::tls::policy::required;
    against(
        [](net::stream& s, net::line_reader& r) -> task<void> {
          (void)co_await s.write("+OK ready\r\n");
          if (bool const ok = co_await expect(s, r, "CAPA"); !ok) co_return;
          (void)co_await s.write("+OK\r\nSTLS\r\nUSER\r\n.\r\n");
          if (bool const ok = co_await expect(s, r, "STLS"); !ok) co_return;
          (void)co_await s.write("+OK begin\r\n+OK\r\n");
          (void)co_await line(s, r);
        },
        o, [](pop3::client& c) -> task<void> {
          auto l = co_await c.login();
          REQUIRE(!l);
          CHECK(!c.tls());
        });
  }
}
