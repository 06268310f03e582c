#include <doctest/doctest.h>

#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "mailroom/mda/store_target.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;

namespace {

address addr(std::string_view s) { return parse_path(std::string("<") + std::string(s) + ">", path_options{}).value(); }

struct fixture {
  asio::io_context io;
  std::shared_ptr<store::memory::store> st;
  std::shared_ptr<mda::store_target> target;

  explicit fixture(std::uint64_t storage_limit = 0, bool tempfail = false) {
    store::memory::options o;
    o.create_accounts = false;
    o.storage_limit = storage_limit;
    st = std::make_shared<store::memory::store>(o);
    for (auto u : {"alice", "bob", "carol"}) st->add_account(u);
    mda::store_target_options to;
    to.store = st;
    to.over_quota_tempfail = tempfail;
    target = std::make_shared<mda::store_target>(to, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  }

  std::optional<smtp::reply> check(std::string_view rcpt, std::uint64_t size = 0) {
    return testing::run(io, target->check_recipient(addr(rcpt), size));
  }

  std::uint32_t count(std::string const& user) {
    return testing::run(io, [&]() -> task<std::uint32_t> {
      auto a = (co_await st->open_account(user)).value();
      co_return (co_await a->status("INBOX")).value().messages;
    }());
  }

  std::string first_message(std::string const& user) {
    return testing::run(io, [&]() -> task<std::string> {
      auto a = (co_await st->open_account(user)).value();
      auto m = (co_await a->open("INBOX")).value();
      auto r = (co_await m->open(m->messages().at(0).uid)).value();
      std::string out(r->size(), '\0');
      auto n = (co_await r->read(out)).value();
      out.resize(n);
      co_return out;
    }());
  }
};

}  // namespace

TEST_CASE("aliases: keys per domain or any domain, catch-all, recursion and loops") {
  std::vector<std::string> warnings;
  auto map = mda::alias_map::parse("# comment\n"
                                   "postmaster: alice\n"
                                   "Sales@Example.Test: bob, carol   # two\n"
                                   "team: sales@example.test, alice\n"
                                   "loop1: loop2\nloop2: loop1\n"
                                   "@example.org: carol\n"
                                   "broken line\n"
                                   "pipe: |/bin/sh\n",
                                   &warnings);
  CHECK(map.size() == 6);
  CHECK(warnings.size() == 2);
  fixture f;
  f.target->set_aliases(std::make_shared<mda::alias_map const>(map));
  CHECK(f.target->accounts_for(addr("postmaster@example.test")) == std::vector<std::string>{"alice"});
  CHECK(f.target->accounts_for(addr("sales@example.test")) == std::vector<std::string>{"bob", "carol"});
  CHECK(f.target->accounts_for(addr("sales@example.net")) == std::vector<std::string>{"sales"});
  CHECK(f.target->accounts_for(addr("team+x@example.test")) == std::vector<std::string>{"bob", "carol", "alice"});
  CHECK(f.target->accounts_for(addr("loop1@example.test")).size() == 1);
  CHECK(f.target->accounts_for(addr("Bob+tag@Example.Test")) == std::vector<std::string>{"bob"});
  CHECK(f.target->accounts_for(addr("\".hidden\"@example.test")).empty());
  CHECK(f.target->accounts_for(addr("\"a/b\"@example.test")).empty());
  // RCPT-time answers.
  CHECK(!f.check("postmaster@example.test"));
  CHECK(!f.check("nobody@example.org"));  // catch-all
  CHECK(!f.check("alice@example.org"));   // a real account wins over the catch-all
  CHECK(f.check("nobody@example.test")->code == 550);
  CHECK(f.check("nobody@example.test")->enhanced == std::array<std::uint8_t, 3>{5, 1, 1});
  CHECK(f.check("\"a/b\"@example.test")->enhanced == std::array<std::uint8_t, 3>{5, 1, 3});
}

TEST_CASE("delivery: one copy per account with Return-Path and Delivered-To, subaddress stripped") {
  fixture f;
  testing::run(f.io, [&]() -> task<void> {
    delivery::message_context ctx;
    auto d = (co_await f.target->start(ctx, addr("sender@remote.example"))).value();
    smtp::rcpt_params p;
    CHECK(!(co_await d->add_rcpt(addr("alice+news@example.test"), p)));
    CHECK(!(co_await d->add_rcpt(addr("ALICE@example.test"), p)));  // same account: one copy
    CHECK(!(co_await d->add_rcpt(addr("bob@example.test"), p)));
    auto refused = co_await d->add_rcpt(addr("zed@example.test"), p);
    REQUIRE(refused);
    CHECK(refused->code == 550);
    testing::string_source src("Subject: hi\r\n\r\nbody\r\n");
    REQUIRE(co_await d->body(src));
    auto where = (co_await d->commit()).value();
    CHECK(where == "alice bob");
  }());
  CHECK(f.count("alice") == 1);
  CHECK(f.count("bob") == 1);
  CHECK(f.first_message("alice") ==
        "Return-Path: <sender@remote.example>\r\nDelivered-To: alice+news@example.test\r\nSubject: hi\r\n\r\nbody\r\n");
}

TEST_CASE("quota: 552 5.2.2 (or 452 4.2.2) at RCPT when full or when SIZE= will not fit; commit fails after") {
  fixture f(100);
  CHECK(!f.check("alice@example.test", 50));
  CHECK(f.check("alice@example.test", 150)->code == 552);
  fixture temp(100, true);
  auto r = temp.check("alice@example.test", 150);
  REQUIRE(r);
  CHECK(r->code == 452);
  CHECK(r->enhanced == std::array<std::uint8_t, 3>{4, 2, 2});
  // No SIZE= announced: accepted at RCPT, refused at commit (the queue retries later).
  testing::run(f.io, [&]() -> task<void> {
    delivery::message_context ctx;
    auto d = (co_await f.target->start(ctx, addr("s@remote.example"))).value();
    smtp::rcpt_params p;
    CHECK(!(co_await d->add_rcpt(addr("alice@example.test"), p)));
    testing::string_source src(std::string(200, 'x'));
    REQUIRE(co_await d->body(src));
    auto c = co_await d->commit();
    REQUIRE(!c);
    CHECK(c.error() == store::errc::over_quota);
  }());
  CHECK(f.count("alice") == 0);
}
