// POP3 sessions over loopback TCP against the in-memory store.
#include <doctest/doctest.h>

#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "mailroom/auth/passwd_file.hpp"
#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/pop3/server.hpp"
#include "mailroom/store/memory/store.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

namespace {

struct fixture {
  asio::io_context io;
  blocking_pool pool{2};
  testing::temp_dir dir;
  std::shared_ptr<store::memory::store> st = std::make_shared<store::memory::store>(store::memory::options{false});
  std::unique_ptr<pop3::server> srv;
  asio::ip::tcp::endpoint ep;

  explicit fixture(pop3::server_options o = {}) {
    auto pw = dir.path() + "/passwd";
    testing::write_file(pw, "alice:{PLAIN}secret\n");
    st->add_account("alice");
    o.store = st;
    o.auth = auth::passwd_file::open(pw, pool).value();
    o.auth_throttle = testing::fast_throttle();
    srv = std::make_unique<pop3::server>(io.get_executor(), o,
                                         log::logger(std::make_shared<log::null_sink>(), log::level::off));
    pop3::listener_options lo;
    lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    lo.allow_plaintext_auth = true;
    ep = srv->listen(lo).value();
  }

  void put(std::string body, bool seen = false) {
    testing::run(io, [&]() -> task<void> {
      auto a = (co_await st->open_account("alice")).value();
      store::append_options o;
      if (seen) o.flags.set(store::system_flag::seen);
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

  std::string talk(std::string script) { return testing::converse(io, ep, std::move(script)); }
};

}  // namespace

TEST_CASE("login, STAT, LIST, UIDL, RETR with dot-stuffing, TOP, pipelined") {
  fixture f;
  f.put("Subject: one\r\n\r\n.dot line\r\nend\r\n");
  f.put("Subject: two\r\n\r\nb1\r\nb2\r\nb3\r\n");
  auto out = f.talk("CAPA\r\nUSER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL 1\r\nRETR 1\r\nTOP 2 1\r\n"
                    "LIST 3\r\nRETR x\r\nQUIT\r\n");
  CHECK(out.find("+OK mailroom POP3 ready\r\n") == 0);
  CHECK(out.find("CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n") != std::string::npos);
  CHECK(out.find("USER\r\nSASL PLAIN\r\n") != std::string::npos);  // no SCRAM secrets in this file
  CHECK(out.find("+OK Logged in, 2 messages\r\n") != std::string::npos);
  CHECK(out.find("+OK 2 60\r\n") != std::string::npos);
  CHECK(out.find("+OK 2 messages\r\n1 32\r\n2 28\r\n.\r\n") != std::string::npos);
  CHECK(out.find("+OK 2 28\r\n") != std::string::npos);
  CHECK(out.find("+OK 1 00000001") != std::string::npos);
  CHECK(out.find("+OK 32 octets\r\nSubject: one\r\n\r\n..dot line\r\nend\r\n.\r\n") != std::string::npos);
  CHECK(out.find("Subject: two\r\n\r\nb1\r\n.\r\n") != std::string::npos);
  CHECK(out.find("-ERR There's no message 3\r\n") != std::string::npos);
  CHECK(out.find("-ERR Invalid message number\r\n") != std::string::npos);
  CHECK(out.find("+OK Logging out, 0 messages deleted\r\n") != std::string::npos);
}

TEST_CASE("DELE takes effect at QUIT only; RSET undoes; a dropped session deletes nothing") {
  fixture f;
  f.put("a\r\n");
  f.put("b\r\n");
  f.put("c\r\n");
  auto out = f.talk("USER alice\r\nPASS secret\r\nDELE 1\r\nDELE 1\r\nRETR 1\r\nSTAT\r\n");  // no QUIT
  CHECK(out.find("-ERR Message is deleted") != std::string::npos);
  CHECK(out.find("+OK 2 6\r\n") != std::string::npos);
  CHECK(f.count() == 3);
  out = f.talk("USER alice\r\nPASS secret\r\nDELE 1\r\nRSET\r\nDELE 2\r\nQUIT\r\n");
  CHECK(out.find("+OK Logging out, 1 messages deleted") != std::string::npos);
  CHECK(f.count() == 2);
  out = f.talk("USER alice\r\nPASS secret\r\nLIST\r\nQUIT\r\n");
  CHECK(out.find("+OK 2 messages\r\n1 3\r\n2 3\r\n.\r\n") != std::string::npos);
}

TEST_CASE("authentication: wrong password, AUTH PLAIN with SASL-IR and by challenge, cancel, states") {
  fixture f;
  auto out = f.talk("STAT\r\nPASS x\r\nUSER alice\r\nPASS wrong\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nSTAT\r\nUSER x\r\nQUIT\r\n");
  CHECK(out.find("-ERR Command not valid in this state") != std::string::npos);
  CHECK(out.find("-ERR No username given") != std::string::npos);
  CHECK(out.find("-ERR [AUTH] Authentication failed") != std::string::npos);
  CHECK(out.find("+OK Logged in, 0 messages") != std::string::npos);
  CHECK(out.find("+OK 0 0\r\n") != std::string::npos);
  out = f.talk("AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nQUIT\r\n");
  CHECK(out.find("+ \r\n+OK Logged in") != std::string::npos);
  out = f.talk("AUTH PLAIN\r\n*\r\nAUTH NOPE\r\nAUTH\r\nQUIT\r\n");
  CHECK(out.find("-ERR Authentication cancelled") != std::string::npos);
  CHECK(out.find("-ERR Unsupported authentication mechanism") != std::string::npos);
  CHECK(out.find("+OK \r\nPLAIN\r\n.\r\n") != std::string::npos);
}

TEST_CASE("hostile input: long lines, garbage, too many bad commands, NUL") {
  fixture f;
  auto out = f.talk(std::string(5000, 'A') + "\r\nNOOP\r\n" + std::string("X\0Y\r\n", 5) + "LIST 1 2\r\n");
  CHECK(out.find("-ERR Line too long") != std::string::npos);
  CHECK(out.find("-ERR Unknown command") != std::string::npos);
  std::string many;
  for (int i = 0; i < 20; ++i) many += "BOGUS\r\n";
  out = f.talk(many);
  CHECK(out.find("-ERR Too many bad commands") != std::string::npos);
  // The session ended after the limit: not 20 answers.
  std::size_t answers = 0;
  for (auto p = out.find("-ERR Unknown"); p != std::string::npos; p = out.find("-ERR Unknown", p + 1)) ++answers;
  CHECK(answers == 10);
}

TEST_CASE("plaintext login is refused without TLS unless the listener allows it") {
  asio::io_context io;
  blocking_pool pool{1};
  pop3::server_options o;
  o.store = std::make_shared<store::memory::store>();
  o.auth = std::make_shared<auth::memory_backend>();
  pop3::server srv(io.get_executor(), o, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  pop3::listener_options lo;
  lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
  auto ep = srv.listen(lo).value();
  auto out = testing::converse(io, ep, "CAPA\r\nUSER a\r\nAUTH PLAIN\r\nQUIT\r\n");
  CHECK(out.find("USER\r\n") == std::string::npos);
  CHECK(out.find("SASL") == std::string::npos);
  CHECK(out.find("-ERR [AUTH] Plaintext authentication disallowed") != std::string::npos);
}
