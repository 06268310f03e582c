// IMAP sessions over loopback TCP against the in-memory store: scripted transcripts.
#include <doctest/doctest.h>

#include <string>

#include <asio/io_context.hpp>

#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/imap/server.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

namespace {

struct fixture {
  asio::io_context io;
  blocking_pool pool{2};
  testing::temp_dir dir;
  std::shared_ptr<store::memory::store> st;
  std::unique_ptr<imap::server> srv;
  asio::ip::tcp::endpoint ep;

  explicit fixture(store::memory::options so = {false}, std::chrono::milliseconds command_timeout = std::chrono::minutes(30))
      : st(std::make_shared<store::memory::store>(so)) {
    auto pw = dir.path() + "/passwd";
    testing::write_file(pw, "alice:{PLAIN}secret\nbob:{PLAIN}secret\n");
    st->add_account("alice");
    st->add_account("bob");
    imap::server_options o;
    o.command_timeout = command_timeout;
    o.store = st;
    o.auth = auth::passwd_file::open(pw, pool).value();
    o.auth_throttle = testing::fast_throttle();
    srv = std::make_unique<imap::server>(io.get_executor(), o,
                                         log::logger(std::make_shared<log::null_sink>(), log::level::off));
    imap::listener_options lo;
    lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    lo.allow_plaintext_auth = true;
    ep = srv->listen(lo).value();
  }

  void put(std::string body, bool seen = false, std::string mailbox = "INBOX") {
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      store::append_options o;
      o.internal_date = 1700000000;
      if (seen) o.flags.set(store::system_flag::seen);
      auto ap = (co_await a->append(mailbox, o)).value();
      REQUIRE(ap->write(body));
      REQUIRE(co_await ap->commit());
    }());
  }

  std::string talk(std::string script) { return testing::converse(io, ep, std::move(script)); }
};

bool has(std::string const& out, std::string_view what) { return out.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("greeting, CAPABILITY, LOGIN, SELECT, FETCH, STORE, EXPUNGE, LOGOUT") {
  fixture f;
  f.put("Subject: one\r\nFrom: a@example.org\r\n\r\nfirst body\r\n");
  f.put("Subject: two\r\n\r\nsecond\r\n", true);
  auto out = f.talk(
      "a CAPABILITY\r\n"
      "b LOGIN alice secret\r\n"
      "c SELECT INBOX\r\n"
      "d FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)\r\n"
      "e FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n"
      "f UID FETCH 2 (BODY[TEXT]<0.3>)\r\n"
      "g FETCH 1 BODY[]\r\n"
      "h STORE 2 +FLAGS (\\Deleted)\r\n"
      "i EXPUNGE\r\n"
      "j FETCH 1 (FLAGS)\r\n"
      "k LOGOUT\r\n");
  CHECK(out.rfind("* OK [CAPABILITY IMAP4rev2 IMAP4rev1", 0) == 0);
  CHECK(has(out, "AUTH=PLAIN"));
  CHECK(has(out, "b OK [CAPABILITY"));
  CHECK(has(out, "* 2 EXISTS\r\n"));
  CHECK(has(out, "* OK [UIDVALIDITY "));
  CHECK(has(out, "* OK [UIDNEXT 3]"));
  CHECK(has(out, "c OK [READ-WRITE] SELECT completed"));
  CHECK(has(out, "* 1 FETCH (UID 1 FLAGS () INTERNALDATE \"14-Nov-2023 22:13:20 +0000\" RFC822.SIZE 49)"));
  CHECK(has(out, "* 2 FETCH (UID 2 FLAGS (\\Seen)"));
  CHECK(has(out, "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: one\r\n\r\n)"));
  CHECK(has(out, "* 2 FETCH (UID 2 BODY[TEXT]<0> {3}\r\nsec)"));
  CHECK(has(out, "* 1 FETCH (FLAGS (\\Seen) BODY[] {49}\r\nSubject: one\r\nFrom: a@example.org\r\n\r\nfirst body\r\n)"));
  CHECK(has(out, "* 2 FETCH (FLAGS (\\Seen \\Deleted))"));
  CHECK(has(out, "* 2 EXPUNGE\r\n"));
  CHECK(has(out, "i OK EXPUNGE completed"));
  CHECK(has(out, "* 1 FETCH (FLAGS (\\Seen))"));
  CHECK(has(out, "* BYE"));
  CHECK(has(out, "k OK"));
}

TEST_CASE("mailboxes: CREATE, LIST with special-use, STATUS, APPEND, COPY, MOVE, RENAME, DELETE") {
  fixture f;
  f.put("Subject: m\r\n\r\nx\r\n");
  auto out = f.talk(
      "a LOGIN alice secret\r\n"
      "b CREATE Archive (USE (\\Archive))\r\n"
      "c CREATE Work/Projects\r\n"
      "d LIST \"\" *\r\n"
      "e LIST \"\" %\r\n"
      "f APPEND Archive (\\Flagged) \"14-Jul-2024 02:44:25 -0700\" {12}\r\nSubject: a\r\n\r\n"
      "g STATUS Archive (MESSAGES UIDNEXT UNSEEN)\r\n"
      "h SELECT INBOX\r\n"
      "i COPY 1 Work/Projects\r\n"
      "j MOVE 1 Archive\r\n"
      "k RENAME Work Play\r\n"
      "l DELETE Archive\r\n"
      "m APPEND Nowhere {1+}\r\nx\r\n"
      "n LIST \"\" \"\"\r\n"
      "o LOGOUT\r\n");
  CHECK(has(out, "b OK"));
  CHECK(has(out, "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\""));
  CHECK(has(out, "* LIST (\\HasChildren) \"/\" \"Work\""));
  CHECK(has(out, "* LIST (\\HasNoChildren) \"/\" \"Work/Projects\""));
  CHECK(!has(out.substr(out.find("e OK") - 200), "Work/Projects\"\r\ne OK"));
  CHECK(has(out, "f OK [APPENDUID "));
  CHECK(has(out, "* STATUS \"Archive\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"));
  CHECK(has(out, "i OK [COPYUID "));
  CHECK(has(out, "* OK [COPYUID "));
  CHECK(has(out, "* 1 EXPUNGE\r\nj OK"));
  CHECK(has(out, "k OK"));
  CHECK(has(out, "l OK"));
  CHECK(has(out, "m NO [TRYCREATE]"));
  CHECK(has(out, "* LIST (\\Noselect) \"/\" \"\""));
}

TEST_CASE("SEARCH: flags, sizes, text, NOT/OR, UID, sequence sets; ESEARCH after ENABLE IMAP4rev2") {
  fixture f;
  f.put("Subject: hello world\r\n\r\nbody one\r\n", true);
  f.put("Subject: other\r\n\r\nsomething else entirely\r\n");
  f.put("Subject: third\r\n\r\nHELLO again\r\n");
  auto out = f.talk(
      "a LOGIN alice secret\r\n"
      "b SELECT INBOX\r\n"
      "c SEARCH UNSEEN\r\n"
      "d SEARCH OR SUBJECT hello BODY hello\r\n"
      "e SEARCH NOT SEEN LARGER 40\r\n"
      "f UID SEARCH 2:* TEXT again\r\n"
      "f2 UID SEARCH UID 3:*\r\n"
      "f3 UID SEARCH UID 9:*\r\n"
      "f4 SEARCH (2:*)\r\n"
      "g SEARCH (SEEN) (SUBJECT world)\r\n"
      "h SEARCH BOGUS\r\n"
      "i ENABLE IMAP4rev2\r\n"
      "j SEARCH ALL\r\n"
      "k LOGOUT\r\n");
  CHECK(has(out, "* SEARCH 2 3\r\nc OK"));
  CHECK(has(out, "* SEARCH 1 3\r\nd OK"));
  CHECK(has(out, "* SEARCH 2\r\ne OK"));
  CHECK(has(out, "* SEARCH 3\r\nf OK"));
  CHECK(has(out, "* SEARCH 3\r\nf2 OK"));
  CHECK(has(out, "* SEARCH 3\r\nf3 OK"));  // n:* with n above the last UID still means the last
  CHECK(has(out, "* SEARCH 2 3\r\nf4 OK"));
  CHECK(has(out, "* SEARCH 1\r\ng OK"));
  CHECK(has(out, "h BAD"));
  CHECK(has(out, "* ENABLED IMAP4rev2"));
  CHECK(has(out, "* ESEARCH (TAG \"j\") ALL 1:3\r\nj OK"));
}

TEST_CASE("literals, IDLE with a delivery in between, bad commands before login") {
  fixture f;
  f.put("Subject: a\r\n\r\nx\r\n");
  // IDLE: another session's APPEND shows up as EXISTS while idling.
  auto out = testing::run(f.io, [&]() -> task<std::string> {
    auto s = (co_await net::tcp_stream::connect(f.io.get_executor(), f.ep, 5s)).value();
    s->set_timeouts({5s, 5s});
    std::string got;
    char buf[4096];
    auto read_until = [&](std::string_view what) -> task<bool> {
      while (got.find(what) == std::string::npos) {
        auto n = co_await s->read_some(buf);
        if (!n || *n == 0) co_return false;
        got.append(buf, *n);
      }
      co_return true;
    };
    REQUIRE(co_await s->write(std::string_view("a LOGIN {5}\r\n")));
    REQUIRE(co_await read_until("+ "));
    REQUIRE(co_await s->write(std::string_view("alice secret\r\nb SELECT INBOX\r\nc IDLE\r\n")));
    REQUIRE(co_await read_until("+ idling"));
    auto acct = (co_await f.st->open_account("alice")).value();
    store::append_options o;
    auto ap = (co_await acct->append("INBOX", o)).value();
    REQUIRE(ap->write(std::string_view("Subject: new\r\n\r\ny\r\n")));
    REQUIRE(co_await ap->commit());
    REQUIRE(co_await read_until("* 2 EXISTS"));
    REQUIRE(co_await s->write(std::string_view("DONE\r\nd LOGOUT\r\n")));
    REQUIRE(co_await read_until("d OK"));
    co_return got;
  }());
  CHECK(has(out, "a OK"));
  CHECK(has(out, "c OK IDLE terminated"));
  out = f.talk("a SELECT INBOX\r\nb FOO\r\nc\r\n");
  CHECK(has(out, "* BYE Too many invalid commands"));
  out = f.talk("a LOGIN alice wrong\r\nb LOGIN alice secret\r\nc LOGOUT\r\n");
  CHECK(has(out, "a NO [AUTHENTICATIONFAILED]"));
  CHECK(has(out, "b OK"));
  out = f.talk("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\nb AUTHENTICATE PLAIN\r\n");
  CHECK(has(out, "a OK"));
  out = f.talk("a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nb LOGOUT\r\n");
  CHECK(has(out, "+ \r\na OK"));
}

TEST_CASE("CONDSTORE: HIGHESTMODSEQ, FETCH MODSEQ and CHANGEDSINCE, STORE UNCHANGEDSINCE, SEARCH MODSEQ") {
  fixture f;
  f.put("Subject: a\r\n\r\nx\r\n");
  f.put("Subject: b\r\n\r\ny\r\n");
  auto out = f.talk(
      "a LOGIN alice secret\r\n"
      "b SELECT INBOX (CONDSTORE)\r\n"
      "c FETCH 1:* (FLAGS MODSEQ)\r\n"
      "d STORE 2 +FLAGS (\\Flagged)\r\n"
      "e FETCH 1:* (FLAGS) (CHANGEDSINCE 3)\r\n"
      "f STORE 1,2 (UNCHANGEDSINCE 3) +FLAGS (\\Seen)\r\n"
      "g SEARCH MODSEQ 4\r\n"
      "h STATUS INBOX (HIGHESTMODSEQ)\r\n"
      "i STORE 1 (BOGUS 1) +FLAGS (\\Seen)\r\n"
      "j LOGOUT\r\n");
  CHECK(has(out, "* OK [HIGHESTMODSEQ 3]"));
  CHECK(has(out, "* 1 FETCH (FLAGS () MODSEQ (2))"));
  CHECK(has(out, "* 2 FETCH (FLAGS () MODSEQ (3))"));
  CHECK(has(out, "* 2 FETCH (FLAGS (\\Flagged) MODSEQ (4))"));
  CHECK(has(out, "* 2 FETCH (FLAGS (\\Flagged) MODSEQ (4))\r\ne OK"));  // only message 2 changed since 3
  CHECK(has(out, "* 1 FETCH (FLAGS (\\Seen) MODSEQ (5))"));
  CHECK(has(out, "f OK [MODIFIED 2]"));
  CHECK(has(out, "* SEARCH 1 2 (MODSEQ 5)"));
  CHECK(has(out, "* STATUS \"INBOX\" (HIGHESTMODSEQ 5)"));
  CHECK(has(out, "i BAD"));
}

TEST_CASE("QUOTA: GETQUOTAROOT and GETQUOTA report STORAGE (KiB) and MESSAGE; SETQUOTA is refused") {
  store::memory::options so{false};
  so.storage_limit = 10 * 1024;
  so.messages_limit = 5;
  fixture f(so);
  f.put(std::string(2000, 'x'));
  auto out = f.talk("a LOGIN alice secret\r\nb GETQUOTAROOT INBOX\r\nc GETQUOTA \"\"\r\nd SETQUOTA \"\" (STORAGE 1)\r\n"
                    "e GETQUOTA nope\r\nf LOGOUT\r\n");
  CHECK(has(out, "* QUOTAROOT \"INBOX\" \"\"\r\n* QUOTA \"\" (STORAGE 2 10 MESSAGE 1 5)\r\nb OK"));
  CHECK(has(out, "* QUOTA \"\" (STORAGE 2 10 MESSAGE 1 5)\r\nc OK"));
  CHECK(has(out, "d NO [NOPERM]"));
  CHECK(has(out, "e NO [NONEXISTENT]"));
  fixture unlimited;
  out = unlimited.talk("a LOGIN alice secret\r\nb GETQUOTAROOT INBOX\r\nc LOGOUT\r\n");
  CHECK(has(out, "* QUOTAROOT \"INBOX\"\r\nb OK"));
}

TEST_CASE("hostile: BODY[1.1.1...] 1000 levels deep, IDLE without DONE until the deadline") {
  fixture f({false}, std::chrono::milliseconds(300));
  f.put("Subject: a\r\n\r\nx\r\n");
  std::string deep = "1";
  for (int i = 0; i < 999; ++i) deep += ".1";
  auto out = f.talk("a LOGIN alice secret\r\nb SELECT INBOX\r\nc FETCH 1 BODY[" + deep + "]\r\n"
                    "d FETCH 1 BODY[1.1.1]\r\ne IDLE\r\n");
  CHECK(has(out, "c BAD Invalid section part"));
  CHECK(has(out, "* 1 FETCH (FLAGS (\\Seen) BODY[1.1.1] {0}\r\n)"));  // a part that does not exist is empty
  // The client never says DONE (the script ends without it but keeps the connection open):
  // talk() half-closes, which the server sees as the end; test the deadline with a live socket.
  auto idle = testing::run(f.io, [&]() -> task<std::string> {
    auto s = (co_await net::tcp_stream::connect(f.io.get_executor(), f.ep, 5s)).value();
    s->set_timeouts({5s, 5s});
    REQUIRE(co_await s->write(std::string_view("a LOGIN alice secret\r\nb SELECT INBOX\r\nc IDLE\r\n")));
    std::string got;
    char buf[4096];
    for (;;) {  // until the server gives up on us and closes
      auto n = co_await s->read_some(buf);
      if (!n || *n == 0) break;
      got.append(buf, *n);
    }
    co_return got;
  }());
  CHECK(has(idle, "+ idling"));
  CHECK(has(idle, "* BYE Autologout"));
}

TEST_CASE("ACL: a mailbox shared with another user, rights enforced per command") {
  fixture f;
  f.put("Subject: shared one\r\n\r\nhello bob\r\n");
  f.put("Subject: shared two\r\n\r\nsecond\r\n");
  // Before anything is shared bob sees nothing of alice.
  auto out = f.talk("a LOGIN bob secret\r\nb LIST \"\" *\r\nc SELECT Shared/alice/INBOX\r\nd LOGOUT\r\n");
  CHECK_FALSE(has(out, "Shared/"));
  CHECK(has(out, "c NO [NONEXISTENT]"));
  out = f.talk(
      "a LOGIN alice secret\r\n"
      "b CREATE Projects/2026\r\n"
      "c SETACL INBOX bob lrs\r\n"
      "d SETACL Projects/2026 bob lrsi\r\n"
      "e SETACL Projects bob lk\r\n"
      "f LOGOUT\r\n");
  CHECK(has(out, "c OK SETACL"));
  CHECK(has(out, "e OK SETACL"));
  out = f.talk(
      "a LOGIN bob secret\r\n"
      "b LIST \"\" *\r\n"
      "c LIST \"\" Shared/%\r\n"
      "d MYRIGHTS Shared/alice/INBOX\r\n"
      "e GETACL Shared/alice/INBOX\r\n"
      "f SELECT Shared/alice/INBOX\r\n"
      "g FETCH 1 (BODY[TEXT])\r\n"
      "h STORE 1 +FLAGS (\\Deleted \\Flagged)\r\n"
      "i STORE 2 FLAGS (\\Seen)\r\n"
      "j EXPUNGE\r\n"
      "k COPY 1:2 INBOX\r\n"
      "l COPY 1 Shared/alice/Projects/2026\r\n"
      "m MOVE 1 INBOX\r\n"
      "n APPEND Shared/alice/INBOX {3+}\r\nx\r\n\r\n"
      "o CREATE Shared/alice/Projects/new\r\n"
      "p CREATE Shared/alice/Top\r\n"
      "q DELETE Shared/alice/Projects/2026\r\n"
      "r STATUS Shared/alice/Projects/2026 (MESSAGES)\r\n"
      "s NAMESPACE\r\n"
      "t LOGOUT\r\n");
  CHECK(has(out, "* LIST (\\Noselect \\HasChildren) \"/\" \"Shared\"\r\n"));
  CHECK(has(out, "* LIST (\\Noselect \\HasChildren) \"/\" \"Shared/alice\"\r\n"));
  CHECK(has(out, "* LIST (\\HasNoChildren) \"/\" \"Shared/alice/INBOX\"\r\n"));
  CHECK(has(out, "* LIST (\\HasChildren) \"/\" \"Shared/alice/Projects\"\r\n"));
  CHECK(has(out, "* LIST (\\HasNoChildren) \"/\" \"Shared/alice/Projects/2026\"\r\n"));
  CHECK(has(out, "* MYRIGHTS \"Shared/alice/INBOX\" \"lrs\""));
  CHECK(has(out, "e NO [NOPERM]"));
  CHECK(has(out, "* OK [PERMANENTFLAGS (\\Seen)]"));
  CHECK(has(out, "f OK [READ-WRITE]"));
  CHECK(has(out, "* 1 FETCH (FLAGS (\\Seen) BODY[TEXT] {11}\r\nhello bob\r\n)"));
  CHECK(has(out, "h OK STORE"));         // \Deleted and \Flagged silently not set: no 't', no 'w'
  CHECK_FALSE(has(out, "\\Seen \\Flagged"));
  CHECK_FALSE(has(out, "\\Seen \\Deleted"));
  CHECK(has(out, "i NO [NOPERM]"));      // FLAGS replaces flags it may not touch
  CHECK(has(out, "j NO [NOPERM]"));
  CHECK(has(out, "k OK [COPYUID "));     // into bob's own INBOX, across accounts
  CHECK(has(out, "l OK [COPYUID "));     // 'i' on alice's Projects/2026
  CHECK(has(out, "m NO [NOPERM]"));      // MOVE needs 't' and 'e'
  CHECK(has(out, "n NO [NOPERM]"));      // no 'i' on alice's INBOX
  CHECK(has(out, "o OK CREATE"));        // 'k' on Projects
  CHECK(has(out, "p NO [NOPERM]"));
  CHECK(has(out, "q NO [NOPERM]"));      // no 'x'
  CHECK(has(out, "* STATUS \"Shared/alice/Projects/2026\" (MESSAGES 1)"));
  CHECK(has(out, "* NAMESPACE ((\"\" \"/\")) ((\"Shared/\" \"/\")) NIL"));
  // alice sees bob's \Seen (shared flags), her mailbox unchanged otherwise, and the copies in bob's INBOX.
  out = f.talk("a LOGIN alice secret\r\nb SELECT INBOX\r\nc FETCH 1:* (FLAGS)\r\nd DELETEACL INBOX bob\r\ne LOGOUT\r\n");
  CHECK(has(out, "* 2 EXISTS"));
  CHECK(has(out, "* 1 FETCH (FLAGS (\\Seen))"));
  out = f.talk("a LOGIN bob secret\r\nb STATUS INBOX (MESSAGES)\r\nc SELECT Shared/alice/INBOX\r\nd LOGOUT\r\n");
  CHECK(has(out, "* STATUS \"INBOX\" (MESSAGES 2)"));
  CHECK(has(out, "c NO [NONEXISTENT]"));  // the right was taken back
}

TEST_CASE("SORT and THREAD over the selected messages, with SEARCH keys") {
  fixture f;
  f.put("Subject: banana\r\nFrom: Zed <z@example.org>\r\nMessage-ID: <1@x>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\na\r\n");
  f.put("Subject: Re: banana\r\nFrom: amy@example.org\r\nMessage-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\n"
        "Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n\r\nbb\r\n");
  f.put("Subject: apple\r\nFrom: bob@example.org\r\nMessage-ID: <3@x>\r\nDate: Sun, 31 Dec 2023 10:00:00 +0000\r\n\r\nccc\r\n",
        true);
  auto out = f.talk(
      "a LOGIN alice secret\r\n"
      "b SELECT INBOX\r\n"
      "c SORT (SUBJECT) UTF-8 ALL\r\n"
      "d SORT (REVERSE DATE) UTF-8 ALL\r\n"
      "e UID SORT (FROM) UTF-8 UNSEEN\r\n"
      "f THREAD REFERENCES UTF-8 ALL\r\n"
      "g THREAD ORDEREDSUBJECT UTF-8 ALL\r\n"
      "h SORT (BOGUS) UTF-8 ALL\r\n"
      "i THREAD NOSUCH UTF-8 ALL\r\n"
      "j SORT (SIZE) KOI8-R ALL\r\n"
      "k SORT (DISPLAYFROM) UTF-8 ALL\r\n"
      "l LOGOUT\r\n");
  CHECK(has(out, "CAPABILITY"));
  CHECK(has(out, "* SORT 3 1 2\r\n"));  // apple, banana, (re) banana: ties by sequence number
  CHECK(has(out, "* SORT 2 1 3\r\n"));
  CHECK(has(out, "* SORT 2 1\r\n"));    // amy before z among the unseen
  CHECK(has(out, "* THREAD (3)(1 2)\r\n"));
  CHECK(has(out, "* THREAD (3)(1 2)\r\n"));
  CHECK(has(out, "h BAD"));
  CHECK(has(out, "i BAD"));
  CHECK(has(out, "j NO [BADCHARSET"));
  CHECK(has(out, "* SORT 2 3 1\r\n"));  // amy, bob, Zed
}
