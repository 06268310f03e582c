// The message_store contract, checked against every backend with the same tests.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "mailroom/store/maildir/store.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::store;
using namespace std::chrono_literals;

namespace {

struct limits {
  std::uint64_t storage = 0;
  std::uint64_t messages = 0;
};

struct memory_backend {
  blocking_pool pool{2};
  std::shared_ptr<message_store> make(limits l = {}) {
    memory::options o;
    o.storage_limit = l.storage;
    o.messages_limit = l.messages;
    return std::make_shared<memory::store>(o);
  }
};

struct maildir_backend {
  testing::temp_dir dir;
  blocking_pool pool{2};
  std::shared_ptr<message_store> make(limits l = {}) {
    maildir::store_options o;
    o.root = dir.path();
    o.create_accounts = true;
    o.storage_limit = l.storage;
    o.messages_limit = l.messages;
    o.auto_create.clear();
    o.poll_interval = 30s;
    return maildir::store::create(o, pool, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  }
};

task<append_result> put(account& a, std::string_view mailbox, std::string body, flag_set f = {}) {
  append_options o;
  o.flags = std::move(f);
  o.internal_date = 1700000000;
  auto ap = (co_await a.append(mailbox, o)).value();
  REQUIRE(ap->write(body));
  co_return (co_await ap->commit()).value();
}

task<std::string> body_of(mailbox& m, uid_t uid) {
  auto r = (co_await m.open(uid)).value();
  std::string out;
  char buf[7];  // small on purpose: several reads
  for (;;) {
    auto n = (co_await r->read(buf)).value();
    if (n == 0) break;
    out.append(buf, n);
  }
  CHECK(out.size() == r->size());
  co_return out;
}

flag_set seen() {
  flag_set f;
  f.set(system_flag::seen);
  return f;
}

flag_set deleted() {
  flag_set f;
  f.set(system_flag::deleted);
  return f;
}

std::vector<uid_t> uids_of(mailbox const& m) {
  std::vector<uid_t> out;
  for (auto const& x : m.messages()) out.push_back(x.uid);
  return out;
}

}  // namespace

task<void> case1(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("alice")).value();
  auto r1 = co_await put(*a, "INBOX", "Subject: one\r\n\r\nfirst\r\n");
  auto r2 = co_await put(*a, "inbox", "Subject: two\r\n\r\nsecond\r\n", seen());
  CHECK(r1.uid == 1);
  CHECK(r2.uid == 2);
  CHECK(r1.uidvalidity == r2.uidvalidity);
  CHECK(r1.uidvalidity != 0);
  auto m = (co_await a->open("INBOX")).value();
  REQUIRE(m->messages().size() == 2);
  CHECK(m->uidvalidity() == r1.uidvalidity);
  CHECK(m->uidnext() == 3);
  auto const& first = m->messages()[0];
  CHECK(first.uid == 1);
  CHECK(first.size == 23);
  CHECK(first.internal_date == 1700000000);
  CHECK(!first.flags.has(system_flag::seen));
  CHECK(m->messages()[1].flags.has(system_flag::seen));
  CHECK(m->messages()[1].modseq > first.modseq);
  CHECK((co_await body_of(*m, 2)) == "Subject: two\r\n\r\nsecond\r\n");
  CHECK((co_await m->open(99)).error() == errc::no_such_message);
  auto status = (co_await a->status("INBOX")).value();
  CHECK(status.messages == 2);
  CHECK(status.unseen == 1);
  CHECK(status.uidnext == 3);
  CHECK(status.size == 23 + 24);
}

TEST_CASE_TEMPLATE("appended messages get ascending UIDs, keep their bytes, flags and date", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case1(backend.make(), io));
}

task<void> case2(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("bob")).value();
  for (int i = 0; i < 3; ++i) co_await put(*a, "INBOX", "m" + std::to_string(i) + "\r\n");
  auto m = (co_await a->open("INBOX")).value();
  auto before = m->highest_modseq();
  uid_t three[] = {3};
  auto st1 = (co_await m->store(three, flag_op::add, deleted())).value();
  REQUIRE(st1.changed.size() == 1);
  CHECK(m->messages()[2].modseq > before);
  auto gone = (co_await m->expunge()).value();
  CHECK(gone == std::vector<uid_t>{3});
  CHECK(uids_of(*m) == std::vector<uid_t>{1, 2});
  auto r = co_await put(*a, "INBOX", "new\r\n");
  CHECK(r.uid == 4);
  auto changes = (co_await m->sync()).value();
  CHECK(uids_of(*m) == std::vector<uid_t>{1, 2, 4});
  REQUIRE(changes.changed.size() == 1);
  CHECK(m->messages()[changes.changed[0]].uid == 4);
  CHECK(m->highest_modseq() > before);
}

TEST_CASE_TEMPLATE("UIDs are never reused and MODSEQ only grows", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case2(backend.make(), io));
}

task<void> case3(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("carol")).value();
  co_await put(*a, "INBOX", "a\r\n");
  co_await put(*a, "INBOX", "b\r\n");
  auto m = (co_await a->open("INBOX")).value();
  uid_t both[] = {1, 2};
  flag_set f;
  f.set(system_flag::flagged);
  f.add_keyword("$Forwarded");
  f.add_keyword("Work");
  REQUIRE(co_await m->store(both, flag_op::add, f));
  CHECK(m->messages()[0].flags.has(system_flag::flagged));
  CHECK(m->messages()[0].flags.has_keyword("work"));
  CHECK(m->messages()[1].flags.to_imap() == "\\Flagged $Forwarded Work");
  flag_set w;
  w.add_keyword("WORK");
  uid_t one[] = {1};
  REQUIRE(co_await m->store(one, flag_op::remove, w));
  CHECK(!m->messages()[0].flags.has_keyword("Work"));
  CHECK(m->messages()[0].flags.has_keyword("$Forwarded"));
  REQUIRE(co_await m->store(one, flag_op::replace, seen()));
  CHECK(m->messages()[0].flags.to_imap() == "\\Seen");
  // UNCHANGEDSINCE: message 2 changes after modseq `old`, so it is refused.
  auto old = m->messages()[0].modseq;
  uid_t two[] = {2};
  REQUIRE(co_await m->store(two, flag_op::add, seen()));
  auto res = (co_await m->store(both, flag_op::add, deleted(), old)).value();
  CHECK(res.modified == std::vector<uid_t>{2});
  CHECK(m->messages()[0].flags.has(system_flag::deleted));
  CHECK(!m->messages()[1].flags.has(system_flag::deleted));
  // Another view sees the flags after sync.
  auto other = (co_await a->open("INBOX")).value();
  CHECK(other->messages()[1].flags.has_keyword("Work"));
  CHECK(other->messages()[0].flags.has(system_flag::deleted));
}

TEST_CASE_TEMPLATE("flag changes: add, remove, replace, keywords and UNCHANGEDSINCE", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case3(backend.make(), io));
}

task<void> case4(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("dave")).value();
  co_await put(*a, "INBOX", "1\r\n");
  co_await put(*a, "INBOX", "2\r\n");
  auto v1 = (co_await a->open("INBOX")).value();
  auto v2 = (co_await a->open("INBOX")).value();
  uid_t one[] = {1};
  REQUIRE(co_await v2->store(one, flag_op::add, deleted()));
  REQUIRE(co_await v2->expunge());
  uid_t two[] = {2};
  REQUIRE(co_await v2->store(two, flag_op::add, seen()));
  co_await put(*a, "INBOX", "3\r\n");
  CHECK(uids_of(*v1) == std::vector<uid_t>{1, 2});  // unchanged until sync
  auto c = (co_await v1->sync()).value();
  CHECK(c.expunged == std::vector<uid_t>{1});
  CHECK(uids_of(*v1) == std::vector<uid_t>{2, 3});
  CHECK(c.changed == std::vector<std::size_t>{0, 1});
  CHECK(v1->messages()[0].flags.has(system_flag::seen));
  auto again = (co_await v1->sync()).value();
  CHECK(again.changed.empty());
  CHECK(again.expunged.empty());
}

TEST_CASE_TEMPLATE("views report other sessions' arrivals, flag changes and expunges at sync", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case4(backend.make(), io));
}

task<void> case5(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("erin")).value();
  auto v = (co_await a->open("INBOX")).value();
  auto start = std::chrono::steady_clock::now();
  auto writer = [a]() -> task<void> { co_await put(*a, "INBOX", "x\r\n"); };
  asio::co_spawn(io, writer, asio::detached);
  co_await v->wait_for_change(20s);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  auto c = (co_await v->sync()).value();
  CHECK(c.changed.size() == 1);
  // Nothing new: the wait lasts until its limit.
  start = std::chrono::steady_clock::now();
  co_await v->wait_for_change(200ms);
  CHECK(std::chrono::steady_clock::now() - start >= 150ms);
}

TEST_CASE_TEMPLATE("wait_for_change wakes when another session appends", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case5(backend.make(), io));
}

task<void> case6(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("frank")).value();
  REQUIRE(co_await a->create("Lists/dev", special_use::none));
  REQUIRE(co_await a->create("Lists-old", special_use::none));  // sorts between "Lists" and "Lists/dev"
  REQUIRE(co_await a->create("Sent", special_use::sent));
  REQUIRE(co_await a->create("Entwürfe", special_use::drafts));
  CHECK((co_await a->create("Sent", special_use::none)).error() == errc::mailbox_exists);
  CHECK((co_await a->create("inbox", special_use::none)).error() == errc::mailbox_exists);
  CHECK((co_await a->create("a//b", special_use::none)).error() == errc::invalid_name);
  auto list = (co_await a->list()).value();
  std::vector<std::string> names;
  for (auto const& m : list) names.push_back(m.name);
  CHECK(names == std::vector<std::string>{"INBOX", "Entwürfe", "Lists", "Lists-old", "Lists/dev", "Sent"});
  CHECK(list[1].use == special_use::drafts);
  CHECK(list[2].has_children);
  CHECK(!list[3].has_children);
  CHECK(!list[4].has_children);
  CHECK(list[5].use == special_use::sent);
  CHECK((co_await a->remove("INBOX")).error() == errc::cannot);
  CHECK((co_await a->remove("Lists")).error() == errc::has_children);
  CHECK((co_await a->remove("Nope")).error() == errc::no_such_mailbox);
  co_await put(*a, "Lists/dev", "hello\r\n");
  REQUIRE(co_await a->rename("Lists", "Archive/Lists"));
  auto moved = (co_await a->status("Archive/Lists/dev")).value();
  CHECK(moved.messages == 1);
  CHECK((co_await a->status("Lists/dev")).error() == errc::no_such_mailbox);
  REQUIRE(co_await a->remove("Archive/Lists/dev"));
  CHECK((co_await a->status("Archive/Lists/dev")).error() == errc::no_such_mailbox);
  REQUIRE(co_await a->subscribe("Sent", true));
  list = (co_await a->list()).value();
  auto sent = std::find_if(list.begin(), list.end(), [](auto const& m) { return m.name == "Sent"; });
  REQUIRE(sent != list.end());
  CHECK(sent->subscribed);
  // Subscriptions outlive the mailbox (RFC 9051 6.3.7) and may name mailboxes that never were.
  REQUIRE(co_await a->create("Gone", special_use::none));
  REQUIRE(co_await a->subscribe("Gone", true));
  REQUIRE(co_await a->subscribe("Never/There", true));
  REQUIRE(co_await a->remove("Gone"));
  auto subs = (co_await a->subscriptions()).value();
  CHECK(subs == std::vector<std::string>{"Gone", "Never/There", "Sent"});
  REQUIRE(co_await a->subscribe("Never/There", false));
  subs = (co_await a->subscriptions()).value();
  CHECK(subs == std::vector<std::string>{"Gone", "Sent"});
  // Renaming INBOX moves its messages into the new mailbox and leaves INBOX empty.
  co_await put(*a, "INBOX", "in inbox\r\n");
  REQUIRE(co_await a->rename("INBOX", "Old"));
  CHECK((co_await a->status("INBOX")).value().messages == 0);
  CHECK((co_await a->status("Old")).value().messages == 1);
}

TEST_CASE_TEMPLATE("mailbox hierarchy: create, list, rename, delete and their refusals", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case6(backend.make(), io));
}

task<void> case7(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("gina")).value();
  REQUIRE(co_await a->create("Archive", special_use::archive));
  co_await put(*a, "Archive", "already there\r\n");
  co_await put(*a, "INBOX", "one\r\n", seen());
  co_await put(*a, "INBOX", "two\r\n");
  auto m = (co_await a->open("INBOX")).value();
  uid_t both[] = {1, 2};
  auto c = (co_await m->copy(both, "Archive")).value();
  REQUIRE(c.uids.size() == 2);
  CHECK(c.uids[0] == std::pair<uid_t, uid_t>{1, 2});
  CHECK(c.uids[1] == std::pair<uid_t, uid_t>{2, 3});
  CHECK(c.uidvalidity == (co_await a->status("Archive")).value().uidvalidity);
  auto arch = (co_await a->open("Archive")).value();
  REQUIRE(arch->messages().size() == 3);
  CHECK(arch->messages()[1].flags.has(system_flag::seen));
  CHECK(arch->messages()[1].internal_date == 1700000000);
  CHECK((co_await body_of(*arch, 3)) == "two\r\n");
  uid_t one[] = {1};
  auto mv = (co_await m->copy(one, "Archive", true)).value();
  CHECK(mv.uids == std::vector<std::pair<uid_t, uid_t>>{{1, 4}});
  CHECK(uids_of(*m) == std::vector<uid_t>{2});
  CHECK((co_await a->status("INBOX")).value().messages == 1);
  CHECK((co_await m->copy(one, "Nowhere")).error() == errc::no_such_mailbox);
}

TEST_CASE_TEMPLATE("copy and move keep flags and dates and report UID pairs", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case7(backend.make(), io));
}

task<void> case8(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("hank")).value();
  co_await put(*a, "INBOX", std::string(60, 'x'));
  auto q = (co_await a->quota()).value();
  CHECK(q.storage_used == 60);
  CHECK(q.messages_used == 1);
  CHECK(q.storage_limit == 100);
  append_options o;
  auto ap = (co_await a->append("INBOX", o)).value();
  REQUIRE(ap->write(std::string(50, 'y')));
  CHECK((co_await ap->commit()).error() == errc::over_quota);
  co_await put(*a, "INBOX", std::string(20, 'z'));
  co_await put(*a, "INBOX", std::string(10, 'z'));
  CHECK((co_await a->append("INBOX", o)).error() == errc::over_quota);  // 3 messages already
  auto m = (co_await a->open("INBOX")).value();
  uid_t first[] = {m->messages()[0].uid};
  REQUIRE(co_await m->store(first, flag_op::add, deleted()));
  REQUIRE(co_await m->expunge());
  q = (co_await a->quota()).value();
  CHECK(q.storage_used == 30);
  CHECK(q.messages_used == 2);
  co_await put(*a, "INBOX", std::string(50, 'w'));
}

TEST_CASE_TEMPLATE("quota: a message that does not fit is refused with over_quota", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case8(backend.make({100, 3}), io));
}

task<void> case9(std::shared_ptr<message_store> st, asio::io_context& io) {
  auto a = (co_await st->open_account("ivy")).value();
  co_await put(*a, "INBOX", "x\r\n");
  auto m = (co_await a->open("INBOX", true)).value();
  CHECK(m->read_only());
  uid_t one[] = {1};
  CHECK((co_await m->store(one, flag_op::add, seen())).error() == errc::cannot);
  CHECK((co_await m->expunge()).error() == errc::cannot);
  CHECK((co_await m->copy(one, "INBOX", true)).error() == errc::cannot);
}

TEST_CASE_TEMPLATE("a read-only view changes nothing", B, memory_backend, maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case9(backend.make(), io));
}

// ---- access control (RFC 4314) ----

namespace {

rights rts(std::string_view letters) { return rights::parse(letters).value(); }

std::vector<std::string> acl_text(std::vector<acl_entry> const& acl) {
  std::vector<std::string> out;
  for (auto const& e : acl) out.push_back(e.identifier + " " + e.granted.to_string());
  return out;
}

std::vector<std::string> shared_text(std::vector<shared_mailbox> const& v) {
  std::vector<std::string> out;
  for (auto const& m : v) out.push_back(m.owner + ":" + m.name);
  return out;
}

}  // namespace

task<void> case10(std::shared_ptr<message_store> st, asio::io_context& io) {
  std::vector<std::string> got;  // co_await apart from braced lists: g++ 12
  auto a = (co_await st->open_account("alice")).value();
  REQUIRE(co_await a->create("Shared", special_use::none));
  CHECK((co_await a->get_acl("Shared")).value().empty());
  CHECK((co_await a->rights_of("Shared", "alice")).value() == rights::full());
  CHECK((co_await a->rights_of("Shared", "bob")).value().empty());
  CHECK((co_await a->get_acl("Nope")).error() == errc::no_such_mailbox);
  CHECK((co_await a->rights_of("Nope", "bob")).error() == errc::no_such_mailbox);
  CHECK((co_await a->rights_of("Nope", "alice")).error() == errc::no_such_mailbox);
  CHECK((co_await a->set_acl("Nope", "bob", rts("l"))).error() == errc::no_such_mailbox);
  CHECK((co_await a->set_acl("a//b", "bob", rts("l"))).error() == errc::invalid_name);
  CHECK((co_await a->get_acl("a//b")).error() == errc::invalid_name);
  std::vector<std::string> const bad_ids{"", "-", "bo b", "a\nb"};  // named: g++ 12 and co_await
  for (auto const& bad : bad_ids) {
    CAPTURE(bad);
    CHECK((co_await a->set_acl("Shared", bad, rts("l"))).error() == errc::cannot);
  }

  // Grants add up: the user's own entry, "authenticated" and "anyone".
  REQUIRE(co_await a->set_acl("Shared", "bob", rts("lrs")));
  got = acl_text((co_await a->get_acl("Shared")).value());
  CHECK(got == std::vector<std::string>{"bob lrs"});
  CHECK((co_await a->rights_of("Shared", "bob")).value() == rts("lrs"));
  CHECK((co_await a->rights_of("Shared", "carol")).value().empty());
  REQUIRE(co_await a->set_acl("Shared", "anyone", rts("l")));
  REQUIRE(co_await a->set_acl("Shared", "authenticated", rts("i")));
  CHECK((co_await a->rights_of("Shared", "carol")).value() == rts("li"));
  CHECK((co_await a->rights_of("Shared", "bob")).value() == rts("lrsi"));
  // Setting again replaces; c and d arrive as their RFC 4314 rights.
  REQUIRE(co_await a->set_acl("Shared", "bob", rts("lrc")));
  CHECK((co_await a->rights_of("Shared", "bob")).value() == rts("lrikx"));

  // Negative rights take away what the positive entries gave, from everyone they name.
  REQUIRE(co_await a->set_acl("Shared", "-bob", rts("k")));
  REQUIRE(co_await a->set_acl("Shared", "-anyone", rts("i")));
  CHECK((co_await a->rights_of("Shared", "bob")).value() == rts("lrx"));
  CHECK((co_await a->rights_of("Shared", "carol")).value() == rts("l"));
  got = acl_text((co_await a->get_acl("Shared")).value());
  CHECK(got == std::vector<std::string>{"-anyone i", "-bob k", "anyone l", "authenticated i", "bob lrkx"});

  // The owner keeps every right whatever the ACL says; an entry for the owner is still listed.
  REQUIRE(co_await a->set_acl("Shared", "-alice", rights::full()));
  REQUIRE(co_await a->set_acl("Shared", "alice", rts("l")));
  CHECK((co_await a->rights_of("Shared", "alice")).value() == rights::full());
  got = acl_text((co_await a->get_acl("Shared")).value());
  CHECK(std::find(got.begin(), got.end(), "-alice lrswipkxtea") != got.end());
  CHECK(std::find(got.begin(), got.end(), "alice l") != got.end());

  // Removal: nullopt, or an empty set.
  REQUIRE(co_await a->set_acl("Shared", "-alice", std::nullopt));
  REQUIRE(co_await a->set_acl("Shared", "alice", rights{}));
  REQUIRE(co_await a->set_acl("Shared", "-anyone", std::nullopt));
  REQUIRE(co_await a->set_acl("Shared", "nobody", std::nullopt));  // not there: nothing to do
  got = acl_text((co_await a->get_acl("Shared")).value());
  CHECK(got == std::vector<std::string>{"-bob k", "anyone l", "authenticated i", "bob lrkx"});
  CHECK((co_await a->rights_of("Shared", "carol")).value() == rts("li"));

  // Names are normalized; INBOX can be shared too.
  REQUIRE(co_await a->set_acl("inbox", "bob", rts("lr")));
  got = acl_text((co_await a->get_acl("INBOX")).value());
  CHECK(got == std::vector<std::string>{"bob lr"});
  CHECK((co_await a->rights_of("Inbox", "bob")).value() == rts("lr"));
  // Each mailbox has its own ACL.
  REQUIRE(co_await a->create("Other", special_use::none));
  CHECK((co_await a->get_acl("Other")).value().empty());
  CHECK((co_await a->rights_of("Other", "bob")).value().empty());
}

TEST_CASE_TEMPLATE("ACL: grants to users, anyone and authenticated; negative rights; removal; owner", B, memory_backend,
                   maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case10(backend.make(), io));
}

task<void> case11(std::shared_ptr<message_store> st, asio::io_context& io) {
  std::vector<std::string> got;  // co_await apart from braced lists: g++ 12
  auto alice = (co_await st->open_account("alice")).value();
  auto bob = (co_await st->open_account("bob")).value();
  auto carol = (co_await st->open_account("carol")).value();
  auto dave = (co_await st->open_account("dave")).value();
  auto erin = (co_await st->open_account("erin")).value();
  CHECK((co_await st->shared_with("bob")).value().empty());
  REQUIRE(co_await alice->create("Shared", special_use::none));
  REQUIRE(co_await alice->create("Private", special_use::none));
  REQUIRE(co_await alice->set_acl("Shared", "bob", rts("lr")));
  REQUIRE(co_await alice->set_acl("INBOX", "bob", rts("l")));
  REQUIRE(co_await dave->create("Team", special_use::none));
  REQUIRE(co_await dave->create("Hidden", special_use::none));
  REQUIRE(co_await dave->set_acl("Team", "authenticated", rts("lr")));
  REQUIRE(co_await dave->set_acl("Hidden", "bob", rts("r")));  // readable, but not listed: no 'l'
  REQUIRE(co_await erin->create("Blocked", special_use::none));
  REQUIRE(co_await erin->set_acl("Blocked", "anyone", rts("lr")));
  REQUIRE(co_await erin->set_acl("Blocked", "-bob", rts("l")));
  REQUIRE(co_await bob->create("Mine", special_use::none));
  REQUIRE(co_await bob->set_acl("Mine", "anyone", rts("l")));
  // By owner, then name; never the user's own mailboxes.
  got = shared_text((co_await st->shared_with("bob")).value());
  CHECK(got == std::vector<std::string>{"alice:INBOX", "alice:Shared", "dave:Team"});
  got = shared_text((co_await st->shared_with("carol")).value());
  CHECK(got == std::vector<std::string>{"bob:Mine", "dave:Team", "erin:Blocked"});
  got = shared_text((co_await st->shared_with("alice")).value());
  CHECK(got == std::vector<std::string>{"bob:Mine", "dave:Team", "erin:Blocked"});
  // Revoking and re-granting shows at once.
  REQUIRE(co_await alice->set_acl("Shared", "bob", std::nullopt));
  REQUIRE(co_await dave->set_acl("Team", "-bob", rts("l")));
  REQUIRE(co_await erin->set_acl("Blocked", "-bob", std::nullopt));
  got = shared_text((co_await st->shared_with("bob")).value());
  CHECK(got == std::vector<std::string>{"alice:INBOX", "erin:Blocked"});
  REQUIRE(co_await alice->set_acl("Shared", "bob", rts("rl")));
  REQUIRE(co_await alice->set_acl("INBOX", "bob", rts("r")));  // no longer 'l'
  got = shared_text((co_await st->shared_with("bob")).value());
  CHECK(got == std::vector<std::string>{"alice:Shared", "erin:Blocked"});
  (void)carol;
}

TEST_CASE_TEMPLATE("shared_with lists other accounts' mailboxes the user may look up", B, memory_backend,
                   maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case11(backend.make(), io));
}

task<void> case12(std::shared_ptr<message_store> st, asio::io_context& io) {
  std::vector<std::string> got;  // co_await apart from braced lists: g++ 12
  auto a = (co_await st->open_account("alice")).value();
  (void)(co_await st->open_account("bob")).value();
  REQUIRE(co_await a->create("Proj/sub", special_use::none));
  REQUIRE(co_await a->set_acl("Proj", "bob", rts("lr")));
  REQUIRE(co_await a->set_acl("Proj/sub", "bob", rts("l")));
  REQUIRE(co_await a->set_acl("Proj/sub", "-anyone", rts("w")));
  // Rename: the ACLs move with the mailbox and its inferiors.
  REQUIRE(co_await a->rename("Proj", "Old/Proj"));
  got = acl_text((co_await a->get_acl("Old/Proj")).value());
  CHECK(got == std::vector<std::string>{"bob lr"});
  got = acl_text((co_await a->get_acl("Old/Proj/sub")).value());
  CHECK(got == std::vector<std::string>{"-anyone w", "bob l"});
  CHECK((co_await a->get_acl("Old")).value().empty());  // created as a parent: no ACL
  CHECK((co_await a->get_acl("Proj")).error() == errc::no_such_mailbox);
  got = shared_text((co_await st->shared_with("bob")).value());
  CHECK(got == std::vector<std::string>{"alice:Old/Proj", "alice:Old/Proj/sub"});
  // A new mailbox under the old name starts without an ACL.
  REQUIRE(co_await a->create("Proj", special_use::none));
  CHECK((co_await a->get_acl("Proj")).value().empty());
  CHECK((co_await a->rights_of("Proj", "bob")).value().empty());
  // Delete: the ACL goes with the mailbox; so does its listing.
  REQUIRE(co_await a->remove("Old/Proj/sub"));
  got = shared_text((co_await st->shared_with("bob")).value());
  CHECK(got == std::vector<std::string>{"alice:Old/Proj"});
  REQUIRE(co_await a->create("Old/Proj/sub", special_use::none));
  CHECK((co_await a->get_acl("Old/Proj/sub")).value().empty());
  got = shared_text((co_await st->shared_with("bob")).value());
  CHECK(got == std::vector<std::string>{"alice:Old/Proj"});
  // Renaming INBOX moves its messages, not its ACL.
  REQUIRE(co_await a->set_acl("INBOX", "bob", rts("lr")));
  REQUIRE(co_await a->rename("INBOX", "Before"));
  got = acl_text((co_await a->get_acl("INBOX")).value());
  CHECK(got == std::vector<std::string>{"bob lr"});
  CHECK((co_await a->get_acl("Before")).value().empty());
  got = shared_text((co_await st->shared_with("bob")).value());
  CHECK(got == std::vector<std::string>{"alice:INBOX", "alice:Old/Proj"});
}

TEST_CASE_TEMPLATE("ACLs follow RENAME and go with DELETE; shared_with stays coherent", B, memory_backend,
                   maildir_backend) {
  B backend;
  asio::io_context io;
  testing::run(io, case12(backend.make(), io));
}
