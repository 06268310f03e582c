// Maildir++ specifics: what lands on disk, UID persistence, and changes made by other programs.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <asio/io_context.hpp>

#include "mailroom/store/maildir/store.hpp"
#include "store/maildir/detail/names.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace mailroom::store;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<maildir::store> open_store(std::string const& root, blocking_pool& pool) {
  maildir::store_options o;
  o.root = root;
  o.create_accounts = true;
  return maildir::store::create(o, pool, log::logger(std::make_shared<log::null_sink>(), log::level::off));
}

std::vector<std::string> files_in(std::string const& dir) {
  std::vector<std::string> out;
  for (auto const& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

task<append_result> put(account& a, std::string_view mailbox, std::string body, bool assign = true) {
  append_options o;
  o.assign_uid = assign;
  auto ap = (co_await a.append(mailbox, o)).value();
  REQUIRE(ap->write(body));
  co_return (co_await ap->commit()).value();
}

void write_file(std::string const& path, std::string const& content) {
  std::ofstream(path, std::ios::binary) << content;
}

}  // namespace

TEST_CASE("mailbox names map to Maildir++ folder directories") {
  using namespace maildir::detail;
  CHECK(folder_dir("INBOX").value().empty());
  CHECK(folder_dir("Lists/dev").value() == ".Lists.dev");
  CHECK(folder_dir("Entwürfe").value() == ".Entw&APw-rfe");
  CHECK(folder_dir("a.b").error() == errc::invalid_name);
  CHECK(folder_dir("x/cur").error() == errc::invalid_name);
  CHECK(folder_name(".Lists.dev") == "Lists/dev");
  CHECK(folder_name(".INBOX.x") == "INBOX/x");
  CHECK(!folder_name(".."));
  CHECK(!folder_name(".a..b"));
  CHECK(!folder_name("cur"));
}

TEST_CASE("flags are Maildir info letters; keywords go through dovecot-keywords") {
  using namespace maildir::detail;
  std::vector<std::string> kw{"$Forwarded"};
  flag_set f;
  f.set(system_flag::seen);
  f.set(system_flag::answered);
  f.set(system_flag::draft);
  f.add_keyword("Work");
  f.add_keyword("$forwarded");
  CHECK(info_from_flags(f, kw, "P").value() == "DPRSab");
  CHECK(kw == std::vector<std::string>{"$Forwarded", "Work"});
  std::string other;
  auto back = flags_from_info("DPRSabz", kw, &other);
  CHECK(back.to_imap() == "\\Seen \\Answered \\Draft $Forwarded Work");
  CHECK(other == "Pz");  // kept on rewrite
  std::vector<std::string> full(26, "k");
  for (int i = 0; i < 26; ++i) full[i] += std::to_string(i);
  flag_set more;
  more.add_keyword("OneTooMany");
  CHECK(!info_from_flags(more, full));
}

TEST_CASE("on disk: delivery into new/, APPEND into cur/ with flags, folders as .Name with maildirfolder") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto st = open_store(tmp.path(), pool);
  auto md = tmp.path() + "/joe/Maildir";
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("joe")).value();
    auto delivered = co_await put(*a, "INBOX", "delivered\r\n", false);
    CHECK(delivered.uid == 0);
    append_options o;
    o.flags.set(system_flag::seen);
    o.flags.add_keyword("Work");
    auto ap = (co_await a->append("Sent", o)).value();
    REQUIRE(ap->write(std::string_view("sent\r\n")));
    auto r = (co_await ap->commit()).value();
    CHECK(r.uid == 1);
  }());
  auto fresh = files_in(md + "/new");
  REQUIRE(fresh.size() == 1);
  CHECK(fresh[0].find(",S=11") != std::string::npos);
  CHECK(testing::read_file(md + "/new/" + fresh[0]) == "delivered\r\n");
  auto sent = files_in(md + "/.Sent/cur");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].ends_with(",S=6:2,Sa"));
  CHECK(testing::read_file(md + "/.Sent/dovecot-keywords") == "0 Work\n");
  CHECK(fs::exists(md + "/.Sent/maildirfolder"));
  for (auto name : {".Drafts", ".Sent", ".Trash", ".Junk", ".Archive"}) CHECK(fs::is_directory(md + "/" + name + "/cur"));
  // Selecting INBOX takes the delivered message out of new/ (\Recent for that session only).
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("joe")).value();
    CHECK((co_await a->status("INBOX")).value().recent == 1);
    auto m = (co_await a->open("INBOX")).value();
    REQUIRE(m->messages().size() == 1);
    CHECK(m->messages()[0].recent);
    auto other = (co_await a->open("INBOX")).value();
    CHECK(!other->messages()[0].recent);
    CHECK((co_await a->status("INBOX")).value().recent == 0);
  }());
  CHECK(files_in(md + "/new").empty());
  REQUIRE(files_in(md + "/cur").size() == 1);
  CHECK(files_in(md + "/cur")[0] == fresh[0] + ":2,");
}

TEST_CASE("UIDs and UIDVALIDITY survive a restart; a lost UID list gives a new UIDVALIDITY") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  std::uint32_t validity = 0;
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("kim")).value();
      co_await put(*a, "INBOX", "1\r\n");
      co_await put(*a, "INBOX", "2\r\n", false);
      co_await put(*a, "INBOX", "3\r\n");
      auto m = (co_await a->open("INBOX")).value();
      validity = m->uidvalidity();
      CHECK(m->messages().size() == 3);
      uid_t one[] = {1};
      flag_set d;
      d.set(system_flag::deleted);
      REQUIRE(co_await m->store(one, flag_op::add, d));
      REQUIRE(co_await m->expunge());
    }());
  }
  auto list = tmp.path() + "/kim/Maildir/mailroom-uidlist";
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("kim")).value();
      auto m = (co_await a->open("INBOX")).value();
      CHECK(m->uidvalidity() == validity);
      REQUIRE(m->messages().size() == 2);
      CHECK(m->messages()[0].uid == 2);  // the lazily numbered delivery came second
      CHECK(m->messages()[1].uid == 3);
      auto r = co_await put(*a, "INBOX", "4\r\n");
      CHECK(r.uid == 4);
    }());
  }
  // A torn last record (crash while appending) is ignored.
  { std::ofstream(list, std::ios::app) << "9 99 1 1 torn"; }
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("kim")).value();
      auto m = (co_await a->open("INBOX")).value();
      CHECK(m->uidvalidity() == validity);
      CHECK(m->messages().size() == 3);
      CHECK(m->uidnext() == 5);
      auto r = co_await put(*a, "INBOX", "5\r\n");  // appended after the torn record was cut off
      CHECK(r.uid == 5);
    }());
  }
  CHECK(testing::read_file(list).find("torn") == std::string::npos);
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("kim")).value();
      auto m = (co_await a->open("INBOX")).value();
      CHECK(m->uidvalidity() == validity);
      REQUIRE(m->messages().size() == 4);
      CHECK(m->messages().back().uid == 5);
    }());
  }
  // A corrupt header: kept aside, UIDs start over under a new UIDVALIDITY.
  write_file(list, "garbage\n");
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("kim")).value();
      auto m = (co_await a->open("INBOX")).value();
      CHECK(m->uidvalidity() != validity);
      CHECK(m->messages().size() == 4);
    }());
  }
  CHECK(fs::exists(list + ".corrupt"));
}

TEST_CASE("changes by other programs (mutt, Dovecot, an MDA) are seen at the next sync") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto st = open_store(tmp.path(), pool);
  auto md = tmp.path() + "/lee/Maildir";
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("lee")).value();
    co_await put(*a, "INBOX", "ours\r\n");
    auto m = (co_await a->open("INBOX")).value();
    REQUIRE(m->messages().size() == 1);
    auto before = m->highest_modseq();
    std::this_thread::sleep_for(1100ms);  // past the mtime granularity window
    // Another MDA delivers; a reader flags our message \Seen by renaming it.
    write_file(md + "/new/1700000000.M1P1.other", "theirs\r\n");
    auto ours = files_in(md + "/cur")[0];
    fs::rename(md + "/cur/" + ours, md + "/cur/" + ours.substr(0, ours.find(":2,")) + ":2,FS");
    auto c = (co_await m->sync()).value();
    REQUIRE(m->messages().size() == 2);
    CHECK(c.changed == std::vector<std::size_t>{0, 1});
    CHECK(m->messages()[0].flags.has(system_flag::seen));
    CHECK(m->messages()[0].flags.has(system_flag::flagged));
    CHECK(m->messages()[0].modseq > before);
    CHECK(m->messages()[1].uid == 2);
    CHECK(m->messages()[1].size == 8);
    // Reading a message whose file was renamed since the last sync still works.
    auto theirs = files_in(md + "/cur");
    for (auto const& f : theirs)
      if (f.starts_with("1700000000")) fs::rename(md + "/cur/" + f, md + "/cur/1700000000.M1P1.other:2,S");
    auto r = (co_await m->open(2)).value();
    CHECK(r->size() == 8);
    // Someone deletes it.
    std::this_thread::sleep_for(1100ms);
    fs::remove(md + "/cur/1700000000.M1P1.other:2,S");
    c = (co_await m->sync()).value();
    CHECK(c.expunged == std::vector<uid_t>{2});
    CHECK(m->messages().size() == 1);
  }());
}

// ---- access rights: dovecot-acl files and the shared-mailbox index ----

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

TEST_CASE("ACLs on disk: dovecot-acl in each folder directory, in Dovecot's vfile format") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto st = open_store(tmp.path(), pool);
  auto md = tmp.path() + "/alice/Maildir";
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    REQUIRE(co_await a->create("Shared", special_use::none));
    write_file(md + "/dovecot-acl-list", "0 Shared\n");  // Dovecot's cache: dropped so Dovecot rebuilds it
    REQUIRE(co_await a->set_acl("INBOX", "bob", rts("srl")));
    CHECK(!fs::exists(md + "/dovecot-acl-list"));
    REQUIRE(co_await a->set_acl("Shared", "bob", rts("lrs")));
    REQUIRE(co_await a->set_acl("Shared", "anyone", rts("lr")));
    REQUIRE(co_await a->set_acl("Shared", "authenticated", rts("l")));
    REQUIRE(co_await a->set_acl("Shared", "-bob", rts("w")));
    REQUIRE(co_await a->set_acl("Shared", "bob", rts("lr")));  // replaced where it was
    REQUIRE(co_await a->set_acl("Shared", "carol", rts("lrswipkxtea")));
    REQUIRE(co_await a->set_acl("Shared", "carol", std::nullopt));
  }());
  CHECK(testing::read_file(md + "/dovecot-acl") == "user=bob lrs\n");
  CHECK(testing::read_file(md + "/.Shared/dovecot-acl") == "user=bob lr\nanyone lr\nauthenticated l\n-user=bob w\n");
  CHECK(!fs::exists(md + "/dovecot-acl.lock"));
  CHECK(!fs::exists(md + "/.Shared/dovecot-acl.lock"));
  // The store-wide index: who may look up which mailbox ('l' only; negative entries are not in it).
  CHECK(testing::read_file(tmp.path() + "/.mailroom-shared") ==
        "mailroom-shared 1\nanyone alice Shared\nauthenticated alice Shared\nbob alice INBOX\nbob alice Shared\n");
}

TEST_CASE("a dovecot-acl written by Dovecot is understood, and what mailroom does not interpret survives") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto st = open_store(tmp.path(), pool);
  auto dir = tmp.path() + "/alice/Maildir/.Team";
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    REQUIRE(co_await a->create("Team", special_use::none));
  }());
  write_file(dir + "/dovecot-acl",
             "# set up with doveadm acl\n"
             "owner lrwstipekxa\n"
             "group=staff lrw\n"
             "anonymous l\n"
             "\"user=foo \\\"bar\\\"\" r\n"
             "user=carol l :read write-seen x-custom\n"
             "-user=dave l\n"
             "user=erin aetxk\n"
             "\n");
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    auto got = acl_text((co_await a->get_acl("Team")).value());
    CHECK(got == std::vector<std::string>{"-dave l", "anyone l", "carol lrs", "erin kxtea", "foo \"bar\" r"});
    CHECK((co_await a->rights_of("Team", "carol")).value() == rts("lrs"));
    CHECK((co_await a->rights_of("Team", "dave")).value().empty());
    CHECK((co_await a->rights_of("Team", "frank")).value() == rts("l"));  // groups grant nothing here
    {
      auto shared = shared_text((co_await st->shared_with("frank")).value());
      CHECK(shared == std::vector<std::string>{"alice:Team"});
    }
    REQUIRE(co_await a->set_acl("Team", "carol", rts("lr")));
  }());
  CHECK(testing::read_file(dir + "/dovecot-acl") ==
        "# set up with doveadm acl\n"
        "owner lrwstipekxa\n"
        "group=staff lrw\n"
        "anonymous l\n"
        "\"user=foo \\\"bar\\\"\" r\n"
        "user=carol lr\n"
        "-user=dave l\n"
        "user=erin aetxk\n"
        "\n");
}

TEST_CASE("an unreadable dovecot-acl is refused, not guessed at; the owner keeps every right") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto st = open_store(tmp.path(), pool);
  auto dir = tmp.path() + "/alice/Maildir/.Team";
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    REQUIRE(co_await a->create("Team", special_use::none));
  }());
  // An unknown letter (in a negative line: skipping it would grant too much), an unknown kind of
  // identifier, an empty user name, an unclosed quote, text after the letters without ':'.
  for (std::string bad :
       {"anyone lr\n-user=bob lz\n", "unknown=bob l\n", "user= l\n", "\"user=bob l\n", "user=bob lr junk\n"}) {
    CAPTURE(bad);
    write_file(dir + "/dovecot-acl", bad);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      CHECK((co_await a->get_acl("Team")).error() == errc::corrupt);
      CHECK((co_await a->rights_of("Team", "bob")).error() == errc::corrupt);
      CHECK((co_await a->rights_of("Team", "alice")).value() == rights::full());
      CHECK((co_await a->set_acl("Team", "carol", rts("l"))).error() == errc::corrupt);
      CHECK((co_await st->shared_with("bob")).value().empty());
    }());
    CHECK(testing::read_file(dir + "/dovecot-acl") == bad);
    CHECK(!fs::exists(dir + "/dovecot-acl.lock"));
  }
}

TEST_CASE("a stale dovecot-acl.lock (a writer crashed) is broken after 120 s, as Dovecot does") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto st = open_store(tmp.path(), pool);
  auto md = tmp.path() + "/alice/Maildir";
  testing::run(io, [&]() -> task<void> { (void)(co_await st->open_account("alice")).value(); }());
  write_file(md + "/dovecot-acl.lock", "half written");
  fs::last_write_time(md + "/dovecot-acl.lock", fs::file_time_type::clock::now() - 200s);
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    REQUIRE(co_await a->set_acl("INBOX", "bob", rts("l")));
  }());
  CHECK(testing::read_file(md + "/dovecot-acl") == "user=bob l\n");
  CHECK(!fs::exists(md + "/dovecot-acl.lock"));
}

TEST_CASE("ACLs and the shared index survive a restart; a stale index grants nothing; a missing one is rebuilt") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto index = tmp.path() + "/.mailroom-shared";
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      auto c = (co_await st->open_account("carol")).value();
      (void)(co_await st->open_account("bob")).value();
      REQUIRE(co_await a->create("Shared", special_use::none));
      REQUIRE(co_await a->create("Private", special_use::none));
      REQUIRE(co_await c->create("Secret", special_use::none));
      REQUIRE(co_await a->set_acl("Shared", "bob", rts("lr")));
      REQUIRE(co_await a->set_acl("INBOX", "anyone", rts("l")));
    }());
  }
  auto const expected = std::vector<std::string>{"alice:INBOX", "alice:Shared"};
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      auto got = acl_text((co_await a->get_acl("Shared")).value());
      CHECK(got == std::vector<std::string>{"bob lr"});
      CHECK((co_await a->rights_of("Shared", "bob")).value() == rts("lr"));
      CHECK(shared_text((co_await st->shared_with("bob")).value()) == expected);
    }());
  }
  // Lines that do not match any ACL (a crash between steps, edits, junk) are checked, not believed.
  {
    std::ofstream(index, std::ios::app) << "bob carol Secret\n"
                                        << "bob carol Gone\n"
                                        << "bob ../etc Shared\n"
                                        << "bob alice Private\n"
                                        << "bob alice a//b\n"
                                        << "-bob alice Shared\n"
                                        << "bob alice\n"
                                        << "anyone carol Secret\n";
  }
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      CHECK(shared_text((co_await st->shared_with("bob")).value()) == expected);
      {
        auto shared = shared_text((co_await st->shared_with("dave")).value());
        CHECK(shared == std::vector<std::string>{"alice:INBOX"});
      }
      // Another program takes the ACL away: the index still has the line; the answer does not.
      fs::remove(tmp.path() + "/alice/Maildir/.Shared/dovecot-acl");
      {
        auto shared = shared_text((co_await st->shared_with("bob")).value());
        CHECK(shared == std::vector<std::string>{"alice:INBOX"});
      }
      // Another program grants (doveadm acl set): seen once the index is deleted and rebuilt.
      write_file(tmp.path() + "/carol/Maildir/.Secret/dovecot-acl", "user=bob lr\n");
      fs::remove(index);
      {
        auto shared = shared_text((co_await st->shared_with("bob")).value());
        CHECK(shared == std::vector<std::string>{"alice:INBOX", "carol:Secret"});
      }
    }());
  }
  CHECK(testing::read_file(index) == "mailroom-shared 1\nanyone alice INBOX\nbob carol Secret\n");
  write_file(index, "garbage\nbob alice Private\n");  // a wrong header: rebuilt as well
  {
    auto st = open_store(tmp.path(), pool);
    testing::run(io, [&]() -> task<void> {
      {
        auto shared = shared_text((co_await st->shared_with("bob")).value());
        CHECK(shared == std::vector<std::string>{"alice:INBOX", "carol:Secret"});
      }
    }());
  }
  CHECK(testing::read_file(index) == "mailroom-shared 1\nanyone alice INBOX\nbob carol Secret\n");
}

TEST_CASE("the shared index follows RENAME and DELETE of mailboxes with ACLs") {
  testing::temp_dir tmp;
  blocking_pool pool(2);
  asio::io_context io;
  auto st = open_store(tmp.path(), pool);
  auto index = tmp.path() + "/.mailroom-shared";
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    REQUIRE(co_await a->create("Proj/sub", special_use::none));
    REQUIRE(co_await a->set_acl("Proj", "bob", rts("lr")));
    REQUIRE(co_await a->set_acl("Proj/sub", "anyone", rts("l")));
  }());
  CHECK(testing::read_file(index) == "mailroom-shared 1\nanyone alice Proj/sub\nbob alice Proj\n");
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    REQUIRE(co_await a->rename("Proj", "Old/Proj"));
  }());
  CHECK(testing::read_file(tmp.path() + "/alice/Maildir/.Old.Proj/dovecot-acl") == "user=bob lr\n");
  CHECK(testing::read_file(tmp.path() + "/alice/Maildir/.Old.Proj.sub/dovecot-acl") == "anyone l\n");
  CHECK(testing::read_file(index) == "mailroom-shared 1\nanyone alice Old/Proj/sub\nbob alice Old/Proj\n");
  testing::run(io, [&]() -> task<void> {
    auto a = (co_await st->open_account("alice")).value();
    REQUIRE(co_await a->remove("Old/Proj/sub"));
  }());
  CHECK(testing::read_file(index) == "mailroom-shared 1\nbob alice Old/Proj\n");
}
