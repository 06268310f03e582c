#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "mailroom/mda/store_target.hpp"
#include "mailroom/store/maildir/store.hpp"
#include "mailroom/queue/manager.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
using testing::no_context;
using testing::no_params;
using testing::string_source;


// A target whose answers per recipient local part are scripted: "temp*" 451, "perm*" 550.
class scripted_target final : public delivery::delivery_target {
 public:
  std::vector<std::pair<std::vector<std::string>, std::string>> delivered;  // recipients, body
  bool fail_commit = false;

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const&, address const&) override {
    co_return std::make_unique<d>(*this);
  }

 private:
  struct d final : delivery::delivery {
    scripted_target& t;
    std::vector<std::string> rcpts;
    std::string body_text;
    explicit d(scripted_target& x) : t(x) {}
    task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
      if (to.local.rfind("temp", 0) == 0) co_return smtp::reply{451, {4, 2, 0}, "try later"};
      if (to.local.rfind("perm", 0) == 0) co_return smtp::reply{550, {5, 1, 1}, "no such user"};
      rcpts.push_back(to.local);
      co_return std::nullopt;
    }
    task<result<void>> body(smtp::message_source& src) override {
      auto all = co_await smtp::read_all(src);
      if (!all) co_return fail(all.error());
      body_text = std::move(*all);
      co_return result<void>{};
    }
    task<result<std::string>> commit() override {
      if (t.fail_commit) co_return fail(errc::io_error);
      t.delivered.push_back({rcpts, body_text});
      co_return std::string("ok");
    }
    void abort() noexcept override {}
  };
};


struct fixture {
  testing::temp_dir dir;
  blocking_pool pool{2};
  asio::io_context io;
  log::logger quiet{std::make_shared<log::null_sink>(), log::level::off};
  std::shared_ptr<queue::spool> sp = queue::spool::open(dir.path() + "/q", pool, quiet).value();

  std::string enqueue(std::vector<std::string> locals, std::string body) {
    return testing::run(io, [&]() -> task<std::string> {
      address const from{"sender", "example.org"};
      auto d = (co_await sp->start(no_context, from)).value();
      for (auto const& l : locals) {
        address const to{l, "example.org"};
        REQUIRE_FALSE(co_await d->add_rcpt(to, no_params));
      }
      string_source src(body);
      REQUIRE(co_await d->body(src));
      co_return (co_await d->commit()).value();
    }());
  }

  // Runs the manager until `until` holds (or 10 s pass), then stops it.
  template <class Pred>
  void run_manager(std::shared_ptr<queue::manager> m, Pred until) {
    bool finished = false;
    asio::co_spawn(io, m->run(), [&](std::exception_ptr) { finished = true; });
    asio::steady_timer t(io);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    std::function<void(std::error_code)> poll = [&](std::error_code) {
      if (until() || std::chrono::steady_clock::now() > deadline) {
        m->stop();
        return;
      }
      t.expires_after(10ms);
      t.async_wait(poll);
    };
    poll({});
    io.restart();
    io.run_for(20s);
    CHECK(finished);
  }
};

std::size_t count(queue::spool& sp, queue::state s) { return sp.list(s).value().size(); }

}  // namespace

TEST_CASE("the manager delivers everything in incoming/ and empties the queue") {
  fixture f;
  for (int i = 0; i < 25; ++i) f.enqueue({"u" + std::to_string(i), "v"}, "body " + std::to_string(i) + "\r\n");
  auto target = std::make_shared<scripted_target>();
  queue::manager_options o;
  o.active_window = 4;
  auto m = std::make_shared<queue::manager>(f.io.get_executor(), f.sp, target, o, f.quiet);
  f.run_manager(m, [&] { return target->delivered.size() == 25; });
  CHECK(target->delivered.size() == 25);
  CHECK(m->delivered() == 25);
  for (auto s : {queue::state::incoming, queue::state::active, queue::state::deferred, queue::state::hold})
    CHECK(count(*f.sp, s) == 0);
  CHECK(target->delivered[0].second == "body 0\r\n");  // oldest first
  CHECK(target->delivered[0].first == std::vector<std::string>{"u0", "v"});
}

TEST_CASE("temporary refusals are deferred with only those recipients; permanent ones are held") {
  fixture f;
  auto both = f.enqueue({"ok1", "temp1"}, "x\r\n");
  auto perm = f.enqueue({"ok2", "perm1"}, "y\r\n");
  auto target = std::make_shared<scripted_target>();
  auto m = std::make_shared<queue::manager>(f.io.get_executor(), f.sp, target, queue::manager_options{}, f.quiet);
  f.run_manager(m, [&] { return m->deferred() + m->held() == 2; });
  CHECK(target->delivered.size() == 2);
  REQUIRE(count(*f.sp, queue::state::deferred) == 1);
  auto d = f.sp->read(queue::state::deferred, both).value();
  REQUIRE(d.env.recipients.size() == 1);
  CHECK(d.env.recipients[0].addr.local == "temp1");
  CHECK(d.env.attempts == 1);
  CHECK(f.sp->read_body(d).value() == "x\r\n");
  CHECK(f.sp->due(std::chrono::system_clock::now()).value().empty());  // not before its time
  CHECK(f.sp->due(std::chrono::system_clock::now() + 61s).value() == std::vector<std::string>{both});
  REQUIRE(count(*f.sp, queue::state::hold) == 1);
  CHECK(f.sp->read(queue::state::hold, perm).value().env.recipients.at(0).addr.local == "perm1");
}

TEST_CASE("a due deferred message is retried; a failed commit keeps everything for later") {
  fixture f;
  auto id = f.enqueue({"a", "b"}, "z\r\n");
  auto target = std::make_shared<scripted_target>();
  target->fail_commit = true;
  queue::manager_options o;
  o.scan_interval = 50ms;
  auto m = std::make_shared<queue::manager>(f.io.get_executor(), f.sp, target, o, f.quiet);
  f.run_manager(m, [&] { return m->deferred() == 1; });
  CHECK(f.sp->read(queue::state::deferred, id).value().env.recipients.size() == 2);
  // Make it due now, let the commit work, and run again.
  testing::run(f.io, f.sp->defer_until(id, std::chrono::system_clock::now() - 1s));
  target->fail_commit = false;
  auto m2 = std::make_shared<queue::manager>(f.io.get_executor(), f.sp, target, o, f.quiet);
  f.run_manager(m2, [&] { return target->delivered.size() == 1; });
  CHECK(target->delivered.size() == 1);
  CHECK(count(*f.sp, queue::state::deferred) == 0);
}

TEST_CASE("when the envelope cannot be rewritten (full disk), the message is deferred as it was") {
  fixture f;
  auto id = f.enqueue({"a", "temp1"}, "full\r\n");
  // The rewrite's temporary file cannot be created: as when the disk has no room for the copy.
  // (Not empty, so that recover() at start cannot remove it.)
  fs::create_directories(f.sp->root() + "/tmp/" + id + ".rewrite/x");
  auto target = std::make_shared<scripted_target>();
  auto m = std::make_shared<queue::manager>(f.io.get_executor(), f.sp, target, queue::manager_options{}, f.quiet);
  f.run_manager(m, [&] { return m->deferred() == 1; });
  CHECK(target->delivered.size() == 1);
  CHECK(count(*f.sp, queue::state::active) == 0);  // not stranded where nothing looks again
  REQUIRE(count(*f.sp, queue::state::deferred) == 1);
  auto d = f.sp->read(queue::state::deferred, id).value();
  CHECK(d.env.recipients.size() == 2);  // every recipient kept: a repeat at worst, never a loss
  CHECK(f.sp->read_body(d).value() == "full\r\n");
  CHECK(f.sp->due(std::chrono::system_clock::now()).value().empty());  // with the usual backoff
}

TEST_CASE("after a crash, messages left in active/ are delivered on the next start") {
  fixture f;
  auto id = f.enqueue({"a"}, "crash\r\n");
  testing::run(f.io, [&]() -> task<void> { REQUIRE(co_await f.sp->move(id, queue::state::incoming, queue::state::active)); }());
  auto target = std::make_shared<scripted_target>();
  auto m = std::make_shared<queue::manager>(f.io.get_executor(), f.sp, target, queue::manager_options{}, f.quiet);
  f.run_manager(m, [&] { return target->delivered.size() == 1; });
  CHECK(target->delivered.size() == 1);
}

TEST_CASE("end to end into user Maildirs: Return-Path, Delivered-To, subaddress, unknown users") {
  fixture f;
  auto root = f.dir.path() + "/mail";
  fs::create_directories(root + "/alice");
  fs::create_directories(root + "/bob");
  store::maildir::store_options so;
  so.root = root;
  so.auto_create.clear();
  mda::store_target_options mo;
  mo.store = store::maildir::store::create(so, f.pool, f.quiet);
  auto mda = std::make_shared<mda::store_target>(mo, f.quiet);
  f.enqueue({"alice", "Bob+lists", "nobody", "../etc"}, "Subject: hi\r\n\r\nhello\r\n");
  auto m = std::make_shared<queue::manager>(f.io.get_executor(), f.sp, mda, queue::manager_options{}, f.quiet);
  f.run_manager(m, [&] { return m->held() == 1; });
  for (auto const* user : {"alice", "bob"}) {
    CAPTURE(user);
    auto dir = root + "/" + user + "/Maildir/new";
    REQUIRE(fs::exists(dir));
    std::vector<fs::path> files(fs::directory_iterator(dir), fs::directory_iterator{});
    REQUIRE(files.size() == 1);
    auto text = testing::read_file(files[0].string());
    CHECK(text.rfind("Return-Path: <sender@example.org>\r\nDelivered-To: ", 0) == 0);
    CHECK(text.find("\r\n\r\nhello\r\n") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(root + "/nobody"));
  CHECK(m->held() == 1);  // nobody and ../etc were refused permanently: kept for the postmaster
}
