// mta::remote_target against a real DNS server (dnsmasq) and SMTP servers on 127.0.0.2 and
// 127.0.0.3: MX order, fallback to the next MX, null MX, unknown domains, per-recipient results,
// connection reuse, backup-MX self filtering, a smarthost. Postfix as the receiver is in
// tests/interop/outbound_test.py.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include "mailroom/mta/remote_target.hpp"
#include "mailroom/smtp/server.hpp"
#include "support/dnsmasq.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;
using testing::no_context;
using testing::no_params;
using testing::requires_dnsmasq;
using testing::string_source;

namespace {
address const sender{"s", "sender.test"};
}

namespace {

struct mx_backend final : smtp::backend {
  std::string name;
  std::vector<std::string> got;  // "rcpt1,rcpt2|body"
  int sessions = 0;

  explicit mx_backend(std::string n) : name(std::move(n)) {}

  struct handler final : smtp::session_handler {
    mx_backend& be;
    std::string rcpts;
    explicit handler(mx_backend& b) : be(b) {}
    task<smtp::reply> on_rcpt(address const& to, smtp::rcpt_params const&) override {
      if (to.local == "nobody") co_return smtp::replies::mailbox_unavailable();
      if (to.local == "later") co_return smtp::reply{450, {4, 2, 1}, "Try later"};
      rcpts += (rcpts.empty() ? "" : ",") + to.to_string();
      co_return smtp::replies::recipient_ok();
    }
    task<smtp::reply> on_data(smtp::message_source& body) override {
      auto all = co_await smtp::read_all(body);
      if (!all) co_return smtp::replies::local_error();
      be.got.push_back(rcpts + "|" + *all);
      co_return smtp::replies::queued(be.name);
    }
    void on_reset() override { rcpts.clear(); }
  };
  task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const&) override {
    ++sessions;
    co_return std::make_unique<handler>(*this);
  }
};

log::logger quiet() { return log::logger(std::make_shared<log::null_sink>(), log::level::off); }

struct world {
  asio::io_context io;
  std::uint16_t port = 0;
  std::shared_ptr<mx_backend> mx1 = std::make_shared<mx_backend>("mx1"), mx2 = std::make_shared<mx_backend>("mx2");
  std::unique_ptr<smtp::server> s1, s2;
  std::unique_ptr<testing::dnsmasq> dns_server;
  std::unique_ptr<net::dns::resolver> dns;

  explicit world(bool mx1_up = true) {
    smtp::server_options so;
    so.auth_throttle = testing::fast_throttle();
    s2 = std::make_unique<smtp::server>(io.get_executor(), mx2, so, quiet());
    smtp::listener_options lo;
    lo.endpoint = {asio::ip::make_address("127.0.0.3"), 0};
    port = s2->listen(lo).value().port();
    if (mx1_up) {
      s1 = std::make_unique<smtp::server>(io.get_executor(), mx1, so, quiet());
      lo.endpoint = {asio::ip::make_address("127.0.0.2"), port};
      REQUIRE(s1->listen(lo));
    }
    dns_server = std::make_unique<testing::dnsmasq>(std::vector<std::string>{
        "local=/remote.test/", "local=/null.test/", "local=/nx.test/", "local=/backup.test/",
        "mx-host=remote.test,mx1.remote.test,10", "mx-host=remote.test,mx2.remote.test,20",
        "host-record=mx1.remote.test,127.0.0.2", "host-record=mx2.remote.test,127.0.0.3",
        "mx-host=null.test,.,0", "host-record=null.test,127.0.0.9",
        "mx-host=backup.test,mx1.remote.test,10", "mx-host=backup.test,me.backup.test,20",
        "host-record=me.backup.test,127.0.0.3",
        "host-record=implicit.remote.test,127.0.0.3",
        "local=/noaddr.test/", "txt-record=noaddr.test,no mail here"});
    net::dns::options o;
    o.servers = {dns_server->server()};
    dns = std::make_unique<net::dns::resolver>(io.get_executor(), o);
  }

  std::shared_ptr<mta::remote_target> target(std::optional<mta::next_hop> relay = {}, std::vector<std::string> names = {}) {
    mta::remote_options ro;
    ro.helo_name = "sender.test";
    ro.port = port;
    ro.tls = smtp::tls_policy::opportunistic;
    ro.relay = std::move(relay);
    ro.local_names = std::move(names);
    ro.connect_timeout = std::chrono::seconds(2);
    return std::make_shared<mta::remote_target>(io.get_executor(), *dns, ro, quiet());
  }

  struct sent {
    bool body_ok = false;
    std::optional<smtp::reply> failure;
    std::vector<std::optional<smtp::reply>> outcomes;
    std::string where;
  };
  sent send(mta::remote_target& t, std::vector<address> rcpts, std::string body = "Subject: x\r\n\r\nhello\r\n") {
    sent out;
    testing::run(io, [&]() -> task<void> {
      auto d = (co_await t.start(no_context, sender)).value();
      for (auto const& r : rcpts) REQUIRE(!(co_await d->add_rcpt(r, no_params)));
      string_source src(body);
      auto b = co_await d->body(src);
      out.body_ok = static_cast<bool>(b);
      out.failure = d->failure_reply();
      if (b) {
        out.where = (co_await d->commit()).value();
        out.outcomes = d->recipient_outcomes();
      }
      co_await t.close_idle();
    }());
    return out;
  }
};

}  // namespace

TEST_CASE("remote_target: MX order, per-recipient outcomes, one connection reused" * requires_dnsmasq()) {
  world w;
  auto t = w.target();
  CHECK(t->group_key(address{"a", "Remote.TEST."}) == "remote.test");
  std::optional<world::sent> first, second;
  testing::run(w.io, [&]() -> task<void> {
    std::optional<world::sent>* slots[] = {&first, &second};
    for (auto* slot : slots) {
      auto d = (co_await t->start(no_context, sender)).value();
      address a{"u1", "remote.test"}, b{"nobody", "remote.test"}, c{"later", "remote.test"};
      address const* all[] = {&a, &b, &c};
      for (auto const* r : all) REQUIRE(!(co_await d->add_rcpt(*r, no_params)));
      string_source src("Subject: x\r\n\r\n.dot line\r\nhello\r\n");
      world::sent s;
      s.body_ok = static_cast<bool>(co_await d->body(src));
      if (s.body_ok) {
        s.where = (co_await d->commit()).value();
        s.outcomes = d->recipient_outcomes();
      }
      *slot = s;
    }
    co_await t->close_idle();
  }());
  for (auto* s : {&first, &second}) {
    REQUIRE((*s)->body_ok);
    REQUIRE((*s)->outcomes.size() == 3);
    CHECK(!(*s)->outcomes[0]);
    CHECK((*s)->outcomes[1]->code == 550);
    CHECK((*s)->outcomes[2]->code == 450);
    CHECK((*s)->where.find("127.0.0.2") != std::string::npos);  // the preferred MX
  }
  REQUIRE(w.mx1->got.size() == 2);
  CHECK(w.mx1->got[0] == "u1@remote.test|Subject: x\r\n\r\n.dot line\r\nhello\r\n");
  CHECK(w.mx1->sessions == 1);  // the second message reused the connection
  CHECK(w.mx2->got.empty());
}

TEST_CASE("remote_target: the next MX when the first is down; implicit MX; backup MX skips itself" * requires_dnsmasq()) {
  world w(false);  // nothing listens on 127.0.0.2
  auto t = w.target();
  auto s = w.send(*t, {address{"u1", "remote.test"}});
  REQUIRE(s.body_ok);
  CHECK(s.where.find("127.0.0.3") != std::string::npos);
  CHECK(w.mx2->got.size() == 1);
  auto imp = w.send(*t, {address{"u2", "implicit.remote.test"}});
  REQUIRE(imp.body_ok);  // no MX record: the A record
  CHECK(w.mx2->got.size() == 2);
  // As the backup MX (me.backup.test) for backup.test, only better MX hosts count: mx1 is down.
  auto backup = w.target({}, {"me.backup.test"});
  auto b = w.send(*backup, {address{"u3", "backup.test"}});
  CHECK_FALSE(b.body_ok);
  REQUIRE(b.failure);
  CHECK(b.failure->transient());  // 451 4.4.1 naming the cause: retried later
  CHECK(w.mx2->got.size() == 2);
}

TEST_CASE("remote_target: null MX and unknown domains fail permanently, unreachable ones temporarily" * requires_dnsmasq()) {
  world w;
  auto t = w.target();
  auto n = w.send(*t, {address{"x", "null.test"}});
  CHECK_FALSE(n.body_ok);
  REQUIRE(n.failure);
  CHECK(n.failure->code == 556);
  CHECK(n.failure->enhanced == std::array<std::uint8_t, 3>{5, 1, 10});
  auto nx = w.send(*t, {address{"x", "nx.test"}});
  CHECK_FALSE(nx.body_ok);
  REQUIRE(nx.failure);
  CHECK(nx.failure->code == 550);
  auto none = w.send(*t, {address{"x", "noaddr.test"}});  // neither MX nor address
  REQUIRE(none.failure);
  CHECK(none.failure->code == 550);
  CHECK(none.failure->enhanced == std::array<std::uint8_t, 3>{5, 4, 4});
  auto self = w.target({}, {"mx1.remote.test"});  // we are remote.test's best MX: a loop
  auto loop = w.send(*self, {address{"x", "remote.test"}});
  REQUIRE(loop.failure);
  CHECK(loop.failure->enhanced == std::array<std::uint8_t, 3>{5, 4, 6});
  CHECK(t->max_recipients() == 50);
  w.s1.reset();
  w.s2.reset();
  auto down = w.send(*t, {address{"x", "remote.test"}});
  CHECK_FALSE(down.body_ok);
  REQUIRE(down.failure);
  CHECK(down.failure->code == 451);
  CHECK(down.failure->enhanced == std::array<std::uint8_t, 3>{4, 4, 1});
}

TEST_CASE("remote_target: a smarthost takes every domain in one transaction" * requires_dnsmasq()) {
  world w;
  mta::next_hop hop;
  hop.host = "127.0.0.3";
  hop.port = w.port;
  hop.tls = smtp::tls_policy::opportunistic;
  auto t = w.target(hop);
  CHECK(t->group_key(address{"a", "one.test"}) == t->group_key(address{"b", "two.test"}));
  auto s = w.send(*t, {address{"a", "one.test"}, address{"b", "two.test"}});
  REQUIRE(s.body_ok);
  REQUIRE(w.mx2->got.size() == 1);
  CHECK(w.mx2->got[0].starts_with("a@one.test,b@two.test|"));
}
