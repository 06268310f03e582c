// mra::fetcher against mailroom's own POP3 and IMAP servers (the in-memory store) with a
// recording delivery target: first and incremental fetches, keep and delete, restarts,
// UIDVALIDITY changes, failed local deliveries, size limits. Dovecot as the server is in
// tests/interop/fetch_test.py.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/imap/server.hpp"
#include "mailroom/mra/fetcher.hpp"
#include "mailroom/pop3/server.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"

using namespace mailroom;

namespace {

log::logger quiet() { return log::logger(std::make_shared<log::null_sink>(), log::level::off); }

// Records what was delivered; fails the next `fail_next` commits.
class recorder final : public delivery::delivery_target {
 public:
  std::vector<std::string> bodies;
  std::vector<std::string> senders;
  int fail_next = 0;
  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const&, address const& from) override {
    std::unique_ptr<delivery::delivery> d = std::make_unique<rec>(*this, from);
    co_return d;
  }

 private:
  struct rec final : delivery::delivery {
    rec(recorder& r, address f) : r_(r), from_(std::move(f)) {}
    task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
      if (to.local != "demo") co_return smtp::replies::mailbox_unavailable();
      co_return std::nullopt;
    }
    task<result<void>> body(smtp::message_source& src) override {
      auto all = co_await smtp::read_all(src);
      if (!all) co_return fail(all.error());
      body_ = *all;
      co_return result<void>{};
    }
    task<result<std::string>> commit() override {
      if (r_.fail_next > 0) {
        --r_.fail_next;
        co_return fail(errc::io_error);
      }
      r_.bodies.push_back(body_);
      r_.senders.push_back(from_.to_string());
      co_return std::string("ok");
    }
    void abort() noexcept override {}
    recorder& r_;
    address from_;
    std::string body_;
  };
};

struct world {
  asio::io_context io;
  blocking_pool pool{2};
  testing::temp_dir dir;
  std::shared_ptr<store::memory::store> st = std::make_shared<store::memory::store>(store::memory::options{false});
  std::unique_ptr<pop3::server> pop;
  std::unique_ptr<imap::server> imap;
  std::uint16_t pop_port = 0, imap_port = 0;
  std::shared_ptr<recorder> target = std::make_shared<recorder>();

  world() {
    auto pw = dir.path() + "/passwd";
    testing::write_file(pw, "alice:{PLAIN}secret\n");
    st->add_account("alice");
    auto auth = auth::passwd_file::open(pw, pool).value();
    pop3::server_options po;
    po.store = st;
    po.auth = auth;
    po.auth_throttle = testing::fast_throttle();
    pop = std::make_unique<pop3::server>(io.get_executor(), po, quiet());
    pop3::listener_options pl;
    pl.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    pl.allow_plaintext_auth = true;
    pop_port = pop->listen(pl).value().port();
    imap::server_options io_opts;
    io_opts.store = st;
    io_opts.auth = auth;
    io_opts.auth_throttle = testing::fast_throttle();
    imap = std::make_unique<imap::server>(io.get_executor(), io_opts, quiet());
    imap::listener_options il;
    il.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    il.allow_plaintext_auth = true;
    imap_port = imap->listen(il).value().port();
  }

  void put(std::string body, std::string mailbox = "INBOX") {
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      store::append_options o;
      auto ap = (co_await a->append(mailbox, o)).value();
      REQUIRE(ap->write(body));
      REQUIRE(co_await ap->commit());
    }());
  }
  std::uint32_t count(std::string mailbox = "INBOX") {
    std::uint32_t n = 0;
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      n = (co_await a->status(mailbox)).value().messages;
    }());
    return n;
  }

  mra::account account(mra::account::protocol p, bool keep) {
    mra::account a;
    a.id = p == mra::account::protocol::pop3 ? "alice-pop" : "alice-imap";
    a.proto = p;
    a.host = "127.0.0.1";
    a.port = p == mra::account::protocol::pop3 ? pop_port : imap_port;
    a.implicit_tls = false;
    a.tls = net::tls::policy::none;
    a.allow_plaintext_auth = true;
    a.user = "alice";
    a.password = "secret";
    a.keep = keep;
    a.deliver_to = address{"demo", "example.test"};
    return a;
  }

  result<mra::fetch_stats> fetch(mra::account const& a) {
    auto f = std::make_shared<mra::fetcher>(io.get_executor(), a, target, dir.path() + "/state", nullptr, quiet());
    result<mra::fetch_stats> out = fail(errc::cancelled);
    testing::run(io, [&]() -> task<void> { out = co_await f->fetch_once(); }());
    if (!out) MESSAGE("fetch failed: " << out.error().message());
    return out;
  }
};

}  // namespace

TEST_CASE("fetcher over POP3: all, then only new mail; restarts remember; delete mode empties the server") {
  world w;
  w.put("Return-Path: <ann@remote.example>\r\nSubject: one\r\n\r\n.dot line\r\nfirst\r\n");
  w.put("Subject: two\r\n\r\nsecond\r\n");
  auto keep = w.account(mra::account::protocol::pop3, true);
  auto r = w.fetch(keep);
  REQUIRE(r);
  CHECK(r->fetched == 2);
  REQUIRE(w.target->bodies.size() == 2);
  CHECK(w.target->bodies[0].find(".dot line\r\nfirst\r\n") != std::string::npos);
  CHECK(w.target->senders[0] == "ann@remote.example");
  CHECK(w.target->senders[1].empty());
  r = w.fetch(keep);  // a new fetcher object: the state file remembers
  REQUIRE(r);
  CHECK(r->fetched == 0);
  CHECK(r->seen == 2);
  w.put("Subject: three\r\n\r\nthird\r\n");
  CHECK(w.fetch(keep)->fetched == 1);
  CHECK(w.count() == 3);  // kept on the server
  auto del = keep;
  del.keep = false;
  r = w.fetch(del);
  REQUIRE(r);
  CHECK(r->fetched == 0);  // all three were delivered before: deleted, not fetched again
  CHECK(r->deleted == 3);
  CHECK(w.count() == 0);
  CHECK(w.target->bodies.size() == 3);
}

TEST_CASE("fetcher over IMAP: incremental, failed local delivery retried, UIDVALIDITY change, delete") {
  world w;
  w.put("Subject: a\r\n\r\nalpha\r\n");
  w.put("Subject: b\r\n\r\nbeta\r\n");
  auto keep = w.account(mra::account::protocol::imap, true);
  w.target->fail_next = 1;  // the first local delivery fails: nothing is marked seen
  auto r = w.fetch(keep);
  CHECK_FALSE(r);
  CHECK(w.target->bodies.empty());
  r = w.fetch(keep);
  REQUIRE(r);
  CHECK(r->fetched == 2);
  w.put("Subject: c\r\n\r\ngamma\r\n");
  r = w.fetch(keep);
  REQUIRE(r);
  CHECK(r->fetched == 1);
  CHECK(r->seen == 2);
  // Another folder, deleted and created again: a new UIDVALIDITY, fetched again.
  testing::run(w.io, [&]() -> task<void> {
    auto a = (co_await w.st->open_account("alice")).value();
    REQUIRE(co_await a->create("Work", store::special_use::none));
  }());
  w.put("Subject: w\r\n\r\nwork\r\n", "Work");
  auto work = keep;
  work.id = "alice-work";
  work.folder = "Work";
  CHECK(w.fetch(work)->fetched == 1);
  CHECK(w.fetch(work)->fetched == 0);
  testing::run(w.io, [&]() -> task<void> {
    auto a = (co_await w.st->open_account("alice")).value();
    REQUIRE(co_await a->remove("Work"));
    REQUIRE(co_await a->create("Work", store::special_use::none));
  }());
  w.put("Subject: w2\r\n\r\nwork again\r\n", "Work");
  CHECK(w.fetch(work)->fetched == 1);
  auto del = keep;
  del.keep = false;
  r = w.fetch(del);
  REQUIRE(r);
  CHECK(r->deleted == 3);
  CHECK(w.count() == 0);
  CHECK(w.target->bodies.size() == 5);
}

TEST_CASE("fetcher: messages over max_size stay on the server and are not marked seen") {
  world w;
  w.put("Subject: big\r\n\r\n" + std::string(5000, 'x') + "\r\n");
  w.put("Subject: small\r\n\r\ny\r\n");
  for (auto p : {mra::account::protocol::pop3, mra::account::protocol::imap}) {
    auto a = w.account(p, false);
    a.max_size = 1000;
    auto r = w.fetch(a);
    REQUIRE(r);
    CHECK(r->skipped == 1);
  }
  CHECK(w.count() == 1);  // the big one
  CHECK(w.target->bodies.size() == 1);
}
