#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "mailroom/core/text.hpp"
#include "mailroom/mda/store_target.hpp"
#include "mailroom/mime/message.hpp"
#include "mailroom/store/maildir/store.hpp"
#include "mailroom/queue/manager.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
using testing::string_source;

struct recorded {
  address from;
  std::vector<std::string> rcpts;  // local parts
  std::string body;
};

// A target whose answers are scripted. At RCPT, by local part: rcpt_replies, else "temp*" 451
// 4.2.0 and "perm*" 550 5.1.1. At commit, by group key: commit_replies (then failure_reply()
// says it), else fail_commit (no reply; DSNs, from <>, still pass). After commit, by local part: late_replies (as LMTP
// reports per recipient). group_key is the domain when by_domain.
class fake_target final : public delivery::delivery_target {
 public:
  std::vector<recorded> delivered;
  std::map<std::string, smtp::reply> rcpt_replies, commit_replies, late_replies;
  bool fail_commit = false;
  bool by_domain = false;
  std::size_t limit = 0;
  int starts = 0;

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const&, address const& from) override {
    ++starts;
    co_return std::make_unique<d>(*this, from);
  }
  std::string group_key(address const& rcpt) const override { return by_domain ? text::to_lower(rcpt.domain) : ""; }
  std::size_t max_recipients() const override { return limit; }

  std::vector<recorded> dsns() const {
    std::vector<recorded> out;
    for (auto const& r : delivered)
      if (r.from.is_null()) out.push_back(r);
    return out;
  }
  std::vector<recorded> originals() const {
    std::vector<recorded> out;
    for (auto const& r : delivered)
      if (!r.from.is_null()) out.push_back(r);
    return out;
  }

 private:
  struct d final : delivery::delivery {
    fake_target& t;
    address from;
    std::vector<std::string> rcpts;
    std::string key, body_text;
    std::optional<smtp::reply> failure;
    d(fake_target& x, address f) : t(x), from(std::move(f)) {}
    task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
      key = t.group_key(to);
      if (auto it = t.rcpt_replies.find(to.local); it != t.rcpt_replies.end()) co_return it->second;
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
      if (auto it = t.commit_replies.find(key); it != t.commit_replies.end()) {
        failure = it->second;
        co_return fail(errc::unavailable);
      }
      if (t.fail_commit && !from.is_null()) co_return fail(errc::io_error);
      t.delivered.push_back({from, rcpts, body_text});
      co_return std::string("ok");
    }
    std::optional<smtp::reply> failure_reply() const override { return failure; }
    std::vector<std::optional<smtp::reply>> recipient_outcomes() const override {
      std::vector<std::optional<smtp::reply>> out;
      for (auto const& r : rcpts) {
        auto it = t.late_replies.find(r);
        out.push_back(it == t.late_replies.end() ? std::nullopt : std::optional(it->second));
      }
      return out;
    }
    void abort() noexcept override {}
  };
};

struct rcpt_spec {
  rcpt_spec(std::string l, std::string d = "example.org", int n = 0, std::string o = {})
      : local(std::move(l)), domain(std::move(d)), notify(static_cast<std::uint8_t>(n)), orcpt(std::move(o)) {}
  std::string local;
  std::string domain;
  std::uint8_t notify;
  std::string orcpt;
};

struct fixture {
  testing::temp_dir dir;
  blocking_pool pool{2};
  asio::io_context io;
  log::logger quiet{std::make_shared<log::null_sink>(), log::level::off};
  std::shared_ptr<queue::spool> sp = queue::spool::open(dir.path() + "/q", pool, quiet).value();

  std::string enqueue_to(std::vector<rcpt_spec> rcpts, std::string body, address from = {"sender", "example.org"},
                      smtp::mail_params params = {}) {
    return testing::run(io, [&]() -> task<std::string> {
      delivery::message_context ctx;
      ctx.params = params;
      auto d = (co_await sp->start(ctx, from)).value();
      for (auto const& r : rcpts) {
        address const to{r.local, r.domain};
        smtp::rcpt_params p;
        p.notify = r.notify;
        if (!r.orcpt.empty()) {
          p.orcpt_type = "rfc822";
          p.orcpt = r.orcpt;
        }
        REQUIRE_FALSE(co_await d->add_rcpt(to, p));
      }
      string_source src(body);
      REQUIRE(co_await d->body(src));
      co_return (co_await d->commit()).value();
    }());
  }
  std::string enqueue(std::vector<std::string> locals, std::string body) {
    std::vector<rcpt_spec> r;
    for (auto const& l : locals) r.push_back({l});
    return enqueue_to(r, std::move(body));
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

  std::shared_ptr<queue::manager> make(std::shared_ptr<delivery::delivery_target> t, queue::manager_options o = {}) {
    o.hostname = "mx.example.org";
    return std::make_shared<queue::manager>(io.get_executor(), sp, std::move(t), std::move(o), quiet);
  }

  void make_due(std::string const& id) {
    testing::run(io, sp->defer_until(id, std::chrono::system_clock::now() - 1s));
  }
};

std::size_t count(queue::spool& sp, queue::state s) { return sp.list(s).value().size(); }
bool queue_empty(queue::spool& sp) {
  for (auto s : {queue::state::incoming, queue::state::active, queue::state::deferred, queue::state::hold})
    if (count(sp, s)) return false;
  return true;
}

// The per-recipient blocks of a DSN's message/delivery-status part, unfolded.
std::vector<std::map<std::string, std::string>> dsn_recipients(std::string const& m) {
  auto top = mime::parse(m).value();
  REQUIRE(top.subtype == "report");
  REQUIRE(top.children.size() == 3);
  auto const& p = top.children[1];
  std::vector<std::map<std::string, std::string>> out;
  std::string_view region = std::string_view(m).substr(0, p.end);
  std::size_t off = p.body_begin;
  bool first = true;
  while (off < p.end) {
    std::vector<mime::field> f;
    auto next = mime::parse_header(region, off, f).value();
    if (!first) {
      std::map<std::string, std::string> block;
      for (auto const& x : f) block[std::string(x.name)] = mime::unfold(x.value);
      out.push_back(std::move(block));
    }
    first = false;
    if (next <= off) break;
    off = next;
  }
  return out;
}

std::string subject(std::string const& m) {
  auto top = mime::parse(m).value();
  return mime::unfold(top.header("Subject").value_or(""));
}

}  // namespace

TEST_CASE("the manager delivers everything in incoming/ and empties the queue") {
  fixture f;
  for (int i = 0; i < 25; ++i) f.enqueue({"u" + std::to_string(i), "v"}, "body " + std::to_string(i) + "\r\n");
  auto target = std::make_shared<fake_target>();
  queue::manager_options o;
  o.active_window = 4;
  auto m = f.make(target, o);
  f.run_manager(m, [&] { return target->delivered.size() == 25; });
  CHECK(target->delivered.size() == 25);
  CHECK(m->delivered() == 25);
  CHECK(queue_empty(*f.sp));
  CHECK(target->delivered[0].body == "body 0\r\n");  // oldest first
  CHECK(target->delivered[0].rcpts == std::vector<std::string>{"u0", "v"});
  CHECK(m->dsns() == 0);
}

TEST_CASE("temporary refusals are deferred with their state; permanent ones are bounced, not held") {
  fixture f;
  auto both = f.enqueue({"ok1", "temp1"}, "x\r\n");
  auto perm = f.enqueue({"ok2", "perm1"}, "Subject: hi\r\n\r\ny\r\n");
  auto target = std::make_shared<fake_target>();
  auto before = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  auto m = f.make(target);
  f.run_manager(m, [&] { return m->deferred() == 1 && target->dsns().size() == 1; });
  CHECK(target->originals().size() == 2);
  CHECK(count(*f.sp, queue::state::hold) == 0);
  CHECK(m->held() == 0);
  CHECK(m->failed() == 1);
  CHECK_FALSE(fs::exists(f.sp->path(queue::state::incoming, perm)));
  // The deferred message: only temp1, with its last reply and the time of the attempt.
  REQUIRE(count(*f.sp, queue::state::deferred) == 1);
  auto d = f.sp->read(queue::state::deferred, both).value();
  REQUIRE(d.env.recipients.size() == 1);
  auto const& r = d.env.recipients[0];
  CHECK(r.addr.local == "temp1");
  CHECK(r.last_reply == smtp::reply{451, {4, 2, 0}, "try later"});
  CHECK(r.last_attempt >= before);
  CHECK(d.env.attempts == 1);
  CHECK(d.env.delay_warned == 0);
  CHECK(f.sp->read_body(d).value() == "x\r\n");
  // Due after the first backoff (5 minutes), not before.
  auto now = std::chrono::system_clock::now();
  CHECK(f.sp->due(now + 290s).value().empty());
  CHECK(f.sp->due(now + 301s).value() == std::vector<std::string>{both});
  // The bounce: from <>, to the sender, about perm1 only, with the original attached.
  auto dsn = target->dsns().at(0);
  CHECK(dsn.rcpts == std::vector<std::string>{"sender"});
  CHECK(subject(dsn.body) == "Undelivered Mail Returned to Sender");
  auto blocks = dsn_recipients(dsn.body);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0]["Final-Recipient"] == "rfc822; perm1@example.org");
  CHECK(blocks[0]["Action"] == "failed");
  CHECK(blocks[0]["Status"] == "5.1.1");
  CHECK(blocks[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user");
  CHECK(dsn.body.find("Reporting-MTA: dns; mx.example.org\r\n") != std::string::npos);
  CHECK(dsn.body.find("Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\ny\r\n") != std::string::npos);
}

TEST_CASE("one delivery per group key, each with the whole body; groups fail independently") {
  fixture f;
  std::string body = "Subject: groups\r\n\r\n" + std::string(200000, 'g') + "\r\n";
  auto id = f.enqueue_to({{"a", "one.example"}, {"b", "two.example"}, {"c", "ONE.example"}, {"e", "three.example"},
                       {"h", "four.example"}},
                      body);
  auto target = std::make_shared<fake_target>();
  target->by_domain = true;
  target->commit_replies["two.example"] = smtp::reply{554, {5, 7, 1}, "rejected as spam"};
  target->commit_replies["three.example"] = smtp::reply{451, {4, 3, 0}, "try again"};
  target->late_replies["h"] = smtp::reply{552, {5, 2, 2}, "mailbox full"};
  auto m = f.make(target);
  f.run_manager(m, [&] { return m->deferred() == 1 && target->dsns().size() == 1; });
  CHECK(target->starts >= 5);  // four groups, then the DSN
  auto orig = target->originals();
  REQUIRE(orig.size() == 2);
  CHECK(orig[0].rcpts == std::vector<std::string>{"a", "c"});  // one transaction for one.example
  CHECK(orig[0].body == body);
  CHECK(orig[1].rcpts == std::vector<std::string>{"h"});
  CHECK(orig[1].body == body);  // read afresh
  auto d = f.sp->read(queue::state::deferred, id).value();
  REQUIRE(d.env.recipients.size() == 1);
  CHECK(d.env.recipients[0].addr.local == "e");
  CHECK(d.env.recipients[0].last_outcome() == "451 4.3.0 try again");
  auto blocks = dsn_recipients(target->dsns().at(0).body);
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[0]["Final-Recipient"] == "rfc822; b@two.example");
  CHECK(blocks[0]["Status"] == "5.7.1");
  CHECK(blocks[0]["Diagnostic-Code"] == "smtp; 554 5.7.1 rejected as spam");
  CHECK(blocks[1]["Final-Recipient"] == "rfc822; h@four.example");
  CHECK(blocks[1]["Status"] == "5.2.2");
  // The original was larger than 100 KiB: only its header comes back.
  CHECK(target->dsns()[0].body.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: groups\r\n\r\n--") !=
        std::string::npos);
}

TEST_CASE("a group over the target's max_recipients goes out in chunks, in order") {
  fixture f;
  f.enqueue_to({{"a", "one.example"}, {"b", "one.example"}, {"c", "two.example"}, {"d", "one.example"},
                {"e", "one.example"}},
               "Subject: chunks\r\n\r\nx\r\n");
  auto target = std::make_shared<fake_target>();
  target->by_domain = true;
  target->limit = 2;
  auto m = f.make(target);
  f.run_manager(m, [&] { return target->delivered.size() == 3; });
  auto orig = target->originals();
  REQUIRE(orig.size() == 3);
  CHECK(orig[0].rcpts == std::vector<std::string>{"a", "b"});
  CHECK(orig[1].rcpts == std::vector<std::string>{"c"});
  CHECK(orig[2].rcpts == std::vector<std::string>{"d", "e"});
}

TEST_CASE("a failed body or commit without a reply, or with a 4xx, is retried; all recipients kept") {
  fixture f;
  auto id = f.enqueue({"a", "b"}, "z\r\n");
  auto target = std::make_shared<fake_target>();
  target->fail_commit = true;
  queue::manager_options o;
  o.scan_interval = 50ms;
  auto m = f.make(target, o);
  f.run_manager(m, [&] { return m->deferred() == 1; });
  auto d = f.sp->read(queue::state::deferred, id).value();
  REQUIRE(d.env.recipients.size() == 2);
  CHECK(d.env.recipients[0].last_reply == std::nullopt);
  CHECK_FALSE(d.env.recipients[0].last_error.empty());
  CHECK(m->dsns() == 0);
  // Make it due now, let the commit work, and run again.
  f.make_due(id);
  target->fail_commit = false;
  auto m2 = f.make(target, o);
  f.run_manager(m2, [&] { return target->delivered.size() == 1; });
  CHECK(target->delivered.size() == 1);
  CHECK(queue_empty(*f.sp));
}

TEST_CASE("NOTIFY decides who is reported; a null sender is never bounced") {
  fixture f;
  auto target = std::make_shared<fake_target>();
  SUBCASE("NOTIFY=NEVER and NOTIFY=SUCCESS,DELAY get no failure DSN; FAILURE and unspecified do") {
    f.enqueue_to({{"perm-never", "example.org", smtp::notify_never},
               {"perm-success", "example.org", smtp::notify_success | smtp::notify_delay},
               {"perm-failure", "example.org", smtp::notify_failure, "Perm-Failure@Example.org"},
               {"perm-default"}},
              "Subject: n\r\n\r\nbody\r\n");
    auto m = f.make(target);
    f.run_manager(m, [&] { return target->dsns().size() == 1 && queue_empty(*f.sp); });
    CHECK(m->failed() == 4);
    auto blocks = dsn_recipients(target->dsns().at(0).body);
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[0]["Final-Recipient"] == "rfc822; perm-failure@example.org");
    CHECK(blocks[0]["Original-Recipient"] == "rfc822; Perm-Failure@Example.org");
    CHECK(blocks[1]["Final-Recipient"] == "rfc822; perm-default@example.org");
  }
  SUBCASE("null sender: failures are dropped and logged, nothing is held or queued") {
    address const null_sender{};
    f.enqueue_to({{"perm1"}, {"ok"}}, "Subject: bounce\r\n\r\nx\r\n", null_sender);
    auto m = f.make(target);
    f.run_manager(m, [&] { return target->delivered.size() == 1 && queue_empty(*f.sp); });
    CHECK(queue_empty(*f.sp));
    CHECK(m->dsns() == 0);
    CHECK(target->dsns().size() == 1);  // the one delivered copy (its sender is <>)
    CHECK(target->dsns()[0].rcpts == std::vector<std::string>{"ok"});
  }
  SUBCASE("ENVID and RET=HDRS reach the DSN") {
    smtp::mail_params p;
    p.envid = "env+id";
    p.ret = smtp::dsn_ret::headers;
    address const from{"sender", "example.org"};
    f.enqueue_to({{"perm1"}}, "Subject: hdrs\r\n\r\nsecret body\r\n", from, p);
    auto m = f.make(target);
    f.run_manager(m, [&] { return target->dsns().size() == 1; });
    auto body = target->dsns().at(0).body;
    CHECK(body.find("Original-Envelope-Id: env+2Bid\r\n") != std::string::npos);
    CHECK(body.find("secret body") == std::string::npos);
    CHECK(body.find("Subject: hdrs") != std::string::npos);
  }
}

TEST_CASE("expiry: recipients still failing after max_age fail with 4.4.7") {
  fixture f;
  auto id = f.enqueue({"temp1", "ok"}, "Subject: old\r\n\r\nold\r\n");
  auto target = std::make_shared<fake_target>();
  queue::manager_options o;
  o.clock = [] { return std::chrono::system_clock::now() + 24h * 6; };  // past the default 5 days
  auto m = f.make(target, o);
  f.run_manager(m, [&] { return target->dsns().size() == 1 && queue_empty(*f.sp); });
  CHECK_FALSE(fs::exists(f.sp->path(queue::state::active, id)));
  CHECK(queue_empty(*f.sp));
  auto dsn = target->dsns().at(0).body;
  auto blocks = dsn_recipients(dsn);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0]["Final-Recipient"] == "rfc822; temp1@example.org");
  CHECK(blocks[0]["Action"] == "failed");
  CHECK(blocks[0]["Status"] == "4.4.7");
  CHECK(blocks[0]["Diagnostic-Code"] == "smtp; 451 4.2.0 try later");
  CHECK(dsn.find("delivery time expired") != std::string::npos);
  CHECK(subject(dsn) == "Undelivered Mail Returned to Sender");
}

TEST_CASE("expiry after local errors: the DSN says what went wrong last") {
  fixture f;
  f.enqueue({"a"}, "x\r\n");
  auto target = std::make_shared<fake_target>();
  target->fail_commit = true;  // no reply: our own error
  queue::manager_options o;
  o.clock = [] { return std::chrono::system_clock::now() + 24h * 6; };
  auto m = f.make(target, o);
  f.run_manager(m, [&] { return target->dsns().size() == 1; });
  CHECK(queue_empty(*f.sp));
  auto blocks = dsn_recipients(target->dsns().at(0).body);
  REQUIRE(blocks.size() == 1);
  CHECK(blocks[0]["Status"] == "4.4.7");
  CHECK(blocks[0]["Diagnostic-Code"].rfind("X-mailroom; delivery time expired: the message was in the queue for 5 days; "
                                           "last error: ", 0) == 0);
}

TEST_CASE("the next attempt is never later than the expiry") {
  fixture f;
  auto id = f.enqueue({"temp1"}, "x\r\n");
  auto target = std::make_shared<fake_target>();
  queue::manager_options o;
  o.max_age = 120s;  // sooner than the first backoff (5 minutes)
  auto m = f.make(target, o);
  f.run_manager(m, [&] { return m->deferred() == 1; });
  auto arrival = f.sp->read(queue::state::deferred, id).value().env.arrival;
  auto at = std::chrono::system_clock::from_time_t(arrival);
  CHECK(f.sp->due(at + 119s).value().empty());
  CHECK(f.sp->due(at + 121s).value() == std::vector<std::string>{id});
}

TEST_CASE("exponential backoff: initial, factor, cap") {
  fixture f;
  auto target = std::make_shared<fake_target>();
  auto m = f.make(target);
  CHECK(m->backoff(1) == 5min);
  CHECK(m->backoff(2) == 10min);
  CHECK(m->backoff(3) == 20min);
  CHECK(m->backoff(6) == 160min);
  CHECK(m->backoff(7) == 4h);  // 320 minutes, capped
  CHECK(m->backoff(1000) == 4h);
  queue::manager_options o;
  o.retry_initial = 60s;
  o.retry_factor = 3;
  o.retry_max = 1h;
  auto m2 = f.make(target, o);
  CHECK(m2->backoff(0) == 60s);
  CHECK(m2->backoff(2) == 180s);
  CHECK(m2->backoff(4) == 1620s);
  CHECK(m2->backoff(5) == 1h);
}

TEST_CASE("delay warning: once per message, for NOTIFY=DELAY or no NOTIFY") {
  fixture f;
  auto target = std::make_shared<fake_target>();
  queue::manager_options o;
  o.clock = [] { return std::chrono::system_clock::now() + 5h; };  // past the default 4 hours
  SUBCASE("default: unspecified NOTIFY and NOTIFY=DELAY are warned, NOTIFY=FAILURE is not") {
    auto id = f.enqueue_to({{"temp-default"}, {"temp-failure", "example.org", smtp::notify_failure},
                         {"temp-delay", "example.org", smtp::notify_delay}, {"ok"}},
                        "Subject: slow\r\n\r\nslow body\r\n");
    auto m = f.make(target, o);
    f.run_manager(m, [&] { return m->deferred() == 1 && target->dsns().size() == 1; });
    auto dsn = target->dsns().at(0).body;
    CHECK(subject(dsn) == "Delayed Mail (still being retried)");
    CHECK(dsn.find("slow body") == std::string::npos);  // headers only
    auto blocks = dsn_recipients(dsn);
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[0]["Final-Recipient"] == "rfc822; temp-default@example.org");
    CHECK(blocks[0]["Action"] == "delayed");
    CHECK(blocks[0]["Status"] == "4.2.0");
    CHECK(blocks[0].count("Will-Retry-Until") == 1);
    CHECK(blocks[1]["Final-Recipient"] == "rfc822; temp-delay@example.org");
    auto d = f.sp->read(queue::state::deferred, id).value();
    CHECK(d.env.delay_warned > 0);
    CHECK(d.env.recipients.size() == 3);
    // The next attempt, still failing: no second warning.
    f.make_due(id);
    auto dsns_before = target->dsns().size();
    auto m2 = f.make(target, o);
    f.run_manager(m2, [&] { return m2->deferred() == 1; });
    CHECK(target->dsns().size() == dsns_before);
    CHECK(m2->dsns() == 0);
    CHECK(f.sp->read(queue::state::deferred, id).value().env.attempts == 2);
  }
  SUBCASE("delay_warning = 0: only NOTIFY=DELAY, after the default 4 hours") {
    o.delay_warning = 0s;
    f.enqueue_to({{"temp-default"}, {"temp-delay", "example.org", smtp::notify_delay | smtp::notify_failure}}, "x\r\n");
    auto m = f.make(target, o);
    f.run_manager(m, [&] { return m->deferred() == 1 && target->dsns().size() == 1; });
    auto blocks = dsn_recipients(target->dsns().at(0).body);
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0]["Final-Recipient"] == "rfc822; temp-delay@example.org");
  }
  SUBCASE("not before delay_warning has passed") {
    o.clock = [] { return std::chrono::system_clock::now() + 3h; };
    f.enqueue_to({{"temp-default"}}, "x\r\n");
    auto m = f.make(target, o);
    f.run_manager(m, [&] { return m->deferred() == 1; });
    CHECK(target->dsns().empty());
  }
  SUBCASE("failures and the warning share one DSN") {
    f.enqueue_to({{"temp-default"}, {"perm1"}}, "x\r\n");
    auto m = f.make(target, o);
    f.run_manager(m, [&] { return m->deferred() == 1 && target->dsns().size() == 1; });
    CHECK(m->dsns() == 1);
    auto dsn = target->dsns().at(0).body;
    CHECK(subject(dsn) == "Undelivered Mail Returned to Sender");
    auto blocks = dsn_recipients(dsn);
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[0]["Action"] == "failed");
    CHECK(blocks[1]["Action"] == "delayed");
  }
}

TEST_CASE("a routing loop (more than max_hops Received: fields) fails at once with 5.4.6") {
  fixture f;
  std::string received;
  for (int i = 0; i < 51; ++i) received += "Received: from hop" + std::to_string(i) + ".example by x; date\r\n";
  auto target = std::make_shared<fake_target>();
  SUBCASE("51 hops") {
    f.enqueue({"a", "b"}, received + "Subject: loop\r\n\r\nround and round\r\n");
    auto m = f.make(target);
    f.run_manager(m, [&] { return target->dsns().size() == 1 && queue_empty(*f.sp); });
    CHECK(target->originals().empty());  // not delivered anywhere
    auto blocks = dsn_recipients(target->dsns().at(0).body);
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[0]["Status"] == "5.4.6");
    CHECK(blocks[0]["Diagnostic-Code"].find("routing loop") != std::string::npos);
  }
  SUBCASE("counted beyond the first 64 KiB of a long header") {
    std::string filler;
    for (int i = 0; i < 2000; ++i) filler += "X-Filler: " + std::string(40, 'f') + "\r\n";
    f.enqueue({"a"}, filler + received + "Subject: loop\r\n\r\nbody\r\n");
    auto m = f.make(target);
    f.run_manager(m, [&] { return target->dsns().size() == 1 && queue_empty(*f.sp); });
    CHECK(target->originals().empty());
  }
  SUBCASE("50 hops are fine") {
    f.enqueue({"a"}, received.substr(received.find("Received: from hop1.")) + "Subject: ok\r\n\r\nx\r\n");
    auto m = f.make(target);
    f.run_manager(m, [&] { return target->delivered.size() == 1; });
    CHECK(target->originals().size() == 1);
    CHECK(target->dsns().empty());
  }
}

TEST_CASE("a DSN that cannot be queued keeps the message in hold/, nothing lost") {
  fixture f;
  auto id = f.enqueue({"ok", "perm1"}, "Subject: stuck\r\n\r\nx\r\n");
  // The spool cannot create files any more (no tmp/ directory to write in).
  fs::rename(f.sp->root() + "/tmp", f.sp->root() + "/tmp.away");
  testing::write_file(f.sp->root() + "/tmp", "not a directory");
  auto target = std::make_shared<fake_target>();
  auto m = f.make(target);
  f.run_manager(m, [&] { return m->held() == 1; });
  CHECK(m->dsns() == 0);
  REQUIRE(count(*f.sp, queue::state::hold) == 1);
  auto h = f.sp->read(queue::state::hold, id).value();
  // The rewrite needs tmp/ too, so the envelope is the original one: perm1 is still there.
  bool has_perm = false;
  for (auto const& r : h.env.recipients) has_perm |= r.addr.local == "perm1";
  CHECK(has_perm);
}

TEST_CASE("after a crash, messages left in active/ are delivered on the next start") {
  fixture f;
  auto id = f.enqueue({"a"}, "crash\r\n");
  testing::run(f.io, [&]() -> task<void> { REQUIRE(co_await f.sp->move(id, queue::state::incoming, queue::state::active)); }());
  auto target = std::make_shared<fake_target>();
  auto m = f.make(target);
  f.run_manager(m, [&] { return target->delivered.size() == 1; });
  CHECK(target->delivered.size() == 1);
}

TEST_CASE("when the envelope cannot be rewritten (full disk), the message is deferred as it was") {
  fixture f;
  auto id = f.enqueue({"a", "temp1"}, "full\r\n");
  // The rewrite's temporary file cannot be created: as when the disk has no room for the copy.
  // (Not empty, so that recover() at start cannot remove it.)
  fs::create_directories(f.sp->root() + "/tmp/" + id + ".rewrite/x");
  auto target = std::make_shared<fake_target>();
  auto m = f.make(target);
  f.run_manager(m, [&] { return m->deferred() == 1; });
  CHECK(target->delivered.size() == 1);
  CHECK(count(*f.sp, queue::state::active) == 0);  // not stranded where nothing looks again
  REQUIRE(count(*f.sp, queue::state::deferred) == 1);
  auto d = f.sp->read(queue::state::deferred, id).value();
  CHECK(d.env.recipients.size() == 2);  // every recipient kept: a repeat at worst, never a loss
  CHECK(f.sp->read_body(d).value() == "full\r\n");
  CHECK(f.sp->due(std::chrono::system_clock::now()).value().empty());  // with the usual backoff
}

TEST_CASE("end to end into user Maildirs: Return-Path, Delivered-To, subaddress, bounces") {
  fixture f;
  auto root = f.dir.path() + "/mail";
  for (auto const* u : {"alice", "bob", "sender"}) fs::create_directories(root + "/" + u);
  store::maildir::store_options so;
  so.root = root;
  so.auto_create.clear();
  mda::store_target_options mo;
  mo.store = store::maildir::store::create(so, f.pool, f.quiet);
  auto mda = std::make_shared<mda::store_target>(mo, f.quiet);
  f.enqueue({"alice", "Bob+lists", "nobody", "../etc"}, "Subject: hi\r\n\r\nhello\r\n");
  auto m = f.make(mda);
  auto sender_new = root + "/sender/Maildir/new";
  f.run_manager(m, [&] { return m->dsns() == 1 && queue_empty(*f.sp) && fs::exists(sender_new); });
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
  CHECK(m->held() == 0);
  CHECK(m->failed() == 2);
  // nobody and ../etc were refused permanently: one DSN to the sender, from <>.
  REQUIRE(fs::exists(sender_new));
  std::vector<fs::path> files(fs::directory_iterator(sender_new), fs::directory_iterator{});
  REQUIRE(files.size() == 1);
  auto text = testing::read_file(files[0].string());
  CHECK(text.rfind("Return-Path: <>\r\n", 0) == 0);
  auto blocks = dsn_recipients(text.substr(text.find("From: ")));
  REQUIRE(blocks.size() == 2);
  CHECK(blocks[0]["Final-Recipient"] == "rfc822; nobody@example.org");
  CHECK(blocks[0]["Status"] == "5.1.1");
  CHECK(blocks[1]["Status"].rfind("5.1.", 0) == 0);
}
