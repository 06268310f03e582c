// Sessions over real loopback TCP against a recording backend: the protocol as a client sees it.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/auth/backend.hpp"
#include "mailroom/core/base64.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/smtp/server.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

namespace {

struct message {
  std::string from;
  std::string auth_param;
  std::vector<std::string> rcpts;
  std::string body;
  bool tls = false;
  std::string user;
};

struct recording_backend final : smtp::backend {
  std::vector<message> messages;
  std::vector<std::string> resets;

  struct handler final : smtp::session_handler {
    recording_backend& be;
    smtp::session_info const& info;
    message current;
    handler(recording_backend& b, smtp::session_info const& i) : be(b), info(i) {}

    task<smtp::reply> on_mail(address const& from, smtp::mail_params const& params) override {
      current = {};
      current.from = from.to_string();
      current.auth_param = params.auth.value_or("");
      co_return smtp::replies::sender_ok();
    }
    task<smtp::reply> on_rcpt(address const& to, smtp::rcpt_params const&) override {
      if (to.local == "nobody") co_return smtp::replies::mailbox_unavailable();
      current.rcpts.push_back(to.to_string());
      co_return smtp::replies::recipient_ok();
    }
    task<smtp::reply> on_data(smtp::message_source& body) override {
      auto all = co_await smtp::read_all(body);
      if (!all) co_return smtp::replies::local_error();
      current.body = std::move(*all);
      current.tls = info.tls.has_value();
      current.user = info.auth ? info.auth->user : "";
      be.messages.push_back(current);
      co_return smtp::replies::queued("TEST");
    }
  };

  task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const& info) override {
    co_return std::make_unique<handler>(*this, info);
  }
};

struct fixture {
  asio::io_context io;
  std::shared_ptr<recording_backend> be = std::make_shared<recording_backend>();
  std::unique_ptr<smtp::server> srv;
  asio::ip::tcp::endpoint ep;

  explicit fixture(smtp::server_options opts = {}, smtp::listener_options lo = {}) {
    if (!opts.auth_throttle) {
      auth::throttle::options quick;
      quick.base_delay = 0ms;
      opts.auth_throttle = std::make_shared<auth::throttle>(quick);
    }
    srv = std::make_unique<smtp::server>(io.get_executor(), be, std::move(opts),
                                         log::logger(std::make_shared<log::stderr_sink>(), getenv("MR_TRACE") ? log::level::trace : log::level::off));
    lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    ep = srv->listen(lo).value();
  }
};

// A deliberately dumb client: sends bytes, reads replies, nothing more.
struct client {
  std::unique_ptr<net::stream> s;
  net::line_reader r{1 << 20};

  static task<client> connect(asio::ip::tcp::endpoint ep) {
    auto ex = co_await asio::this_coro::executor;
    auto s = co_await net::tcp_stream::connect(ex, ep, 5s);
    client c;
    c.s = std::move(s.value());
    c.s->set_timeouts({5s, 5s});
    co_return c;
  }
  task<void> send(std::string data) { (void)co_await s->write(std::string_view(data)); }
  task<bool> try_send(std::string data) { co_return static_cast<bool>(co_await s->write(std::string_view(data))); }
  /// One complete reply, lines joined with '\n'; "" at EOF.
  task<std::string> reply() {
    std::string out;
    for (;;) {
      auto l = co_await r.read_line(*s);
      if (!l) co_return out;
      if (!out.empty()) out += '\n';
      out += l->text;
      if (l->text.size() < 4 || l->text[3] != '-') co_return out;
    }
  }
  /// Everything until the server closes.
  task<std::string> rest() {
    std::string out;
    for (;;) {
      auto l = co_await r.read_line(*s);
      if (!l) co_return out;
      out += l->text;
      out += '\n';
    }
  }
};

std::string code(std::string const& reply) { return reply.substr(0, 3); }

// Runs a client script against the fixture's server.
template <class F>
void converse(fixture& f, F script) {
  testing::run(f.io, [&]() -> task<void> {
    auto c = co_await client::connect(f.ep);
    CHECK(code(co_await c.reply()) == "220");
    co_await script(c);
  }());
}

}  // namespace

TEST_CASE("a simple transaction is delivered, with EHLO keywords advertised") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO client.example\r\n");
    auto ehlo = co_await c.reply();
    CHECK(ehlo.find("250-PIPELINING") != std::string::npos);
    CHECK(ehlo.find("SIZE 10485760") != std::string::npos);
    CHECK(ehlo.find("8BITMIME") != std::string::npos);
    CHECK(ehlo.find("SMTPUTF8") != std::string::npos);
    CHECK(ehlo.find("ENHANCEDSTATUSCODES") != std::string::npos);
    CHECK(ehlo.find("CHUNKING") != std::string::npos);
    CHECK(ehlo.find("DSN") != std::string::npos);
    CHECK(ehlo.find("STARTTLS") == std::string::npos);  // no TLS context
    CHECK(ehlo.find("AUTH") == std::string::npos);      // no auth backend
    co_await c.send("MAIL FROM:<a@example.org>\r\n");
    CHECK(co_await c.reply() == "250 2.1.0 Ok");
    co_await c.send("RCPT TO:<b@example.net>\r\n");
    CHECK(co_await c.reply() == "250 2.1.5 Ok");
    co_await c.send("DATA\r\n");
    CHECK(code(co_await c.reply()) == "354");
    co_await c.send("Subject: hi\r\n\r\n..dot\r\n.\r\n");
    CHECK(co_await c.reply() == "250 2.0.0 Ok: queued as TEST");
    co_await c.send("QUIT\r\n");
    CHECK(code(co_await c.reply()) == "221");
    CHECK(co_await c.rest() == "");
  });
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].from == "a@example.org");
  CHECK(f.be->messages[0].rcpts == std::vector<std::string>{"b@example.net"});
  CHECK(f.be->messages[0].body == "Subject: hi\r\n\r\n.dot\r\n");
}

TEST_CASE("pipelined commands get their replies in order, in one flight") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<nobody@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "550");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "354");
    co_await c.send("body\r\n.\r\nQUIT\r\n");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "221");
  });
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].rcpts.size() == 1);
}

TEST_CASE("sequence errors") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("MAIL FROM:<a@x.org>\r\n");
    CHECK(co_await c.reply() == "503 5.5.1 Error: send HELO/EHLO first");
    co_await c.send("HELO x\r\n");
    CHECK(co_await c.reply() == "250 localhost");
    co_await c.send("RCPT TO:<b@x.org>\r\n");
    CHECK(code(co_await c.reply()) == "503");
    co_await c.send("DATA\r\n");
    CHECK(code(co_await c.reply()) == "503");
    co_await c.send("MAIL FROM:<a@x.org> SIZE=10\r\n");  // no parameters after HELO
    CHECK(code(co_await c.reply()) == "555");
    co_await c.send("MAIL FROM:<a@x.org>\r\nMAIL FROM:<a@x.org>\r\nDATA\r\n");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "503");
    CHECK(co_await c.reply() == "554 5.5.1 Error: no valid recipients");
    co_await c.send("VRFY root\r\nEXPN list\r\nHELP\r\nNOOP\r\nRSET x\r\nRSET\r\nFOO\r\n");
    CHECK(co_await c.reply() == "502 5.5.1 VRFY command is disabled");
    CHECK(code(co_await c.reply()) == "502");
    CHECK(code(co_await c.reply()) == "214");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "501");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(co_await c.reply() == "500 5.5.2 Error: command not recognized");
  });
  CHECK(f.be->messages.empty());
}

TEST_CASE("SMTP smuggling: bare LF/CR sequences never split a message (reject policy)") {
  char const* const smuggle[] = {"\n.\n", "\r.\r\n", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\r.\n"};
  for (auto const* seq : smuggle) {
    CAPTURE(seq);
    smtp::server_options o;
    o.bare_newlines = smtp::bare_policy::reject;
    fixture f(o);
    converse(f, [seq](client& c) -> task<void> {
      co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
      for (int i = 0; i < 4; ++i) (void)co_await c.reply();
      co_await c.send(std::string("Subject: one\r\n\r\nfirst") + seq +
                      "MAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@x.org>\r\nDATA\r\nSubject: two\r\n\r\nsecond\r\n.\r\n");
      auto r = co_await c.reply();
      CHECK(r.substr(0, 9) == "550 5.6.0");
      co_await c.send("QUIT\r\n");
      CHECK(code(co_await c.reply()) == "221");  // nothing smuggled was executed as a command
    });
    CHECK(f.be->messages.empty());
  }
}

TEST_CASE("SMTP smuggling: under the normalize policy the whole thing is one message") {
  char const* const smuggle[] = {"\n.\n", "\r.\r\n", "\n.\r\n", "\r\n.\n"};
  for (auto const* seq : smuggle) {
    CAPTURE(seq);
    fixture f;  // normalize is the default
    converse(f, [seq](client& c) -> task<void> {
      co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
      for (int i = 0; i < 4; ++i) (void)co_await c.reply();
      co_await c.send(std::string("Subject: one\r\n\r\nfirst") + seq +
                      "MAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@x.org>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n");
      CHECK(code(co_await c.reply()) == "250");
      CHECK(code(co_await c.reply()) == "221");
    });
    REQUIRE(f.be->messages.size() == 1);
    CHECK(f.be->messages[0].rcpts == std::vector<std::string>{"b@x.org"});
    CHECK(f.be->messages[0].body.find("MAIL FROM:<evil@x.org>\r\n") != std::string::npos);
    CHECK(f.be->messages[0].body.find('\n') == f.be->messages[0].body.find("\r\n") + 1);  // CRLF only
  }
}

TEST_CASE("message text sent before 354 ends the session without a message") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<c@x.org>\r\n");
    for (int i = 0; i < 3; ++i) CHECK(code(co_await c.reply()) == "250");
    CHECK(co_await c.reply() == "554 5.5.0 Error: SMTP protocol synchronization (data sent before 354)");
    CHECK(co_await c.rest() == "");
  });
  CHECK(f.be->messages.empty());
}

TEST_CASE("commands end with CRLF; bare LF and NUL are refused") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("NOOP\n");
    CHECK(code(co_await c.reply()) == "500");
    co_await c.send(std::string("NO\0OP\r\n", 7));
    CHECK(code(co_await c.reply()) == "500");
    co_await c.send("NOOP\r\n");
    CHECK(code(co_await c.reply()) == "250");
  });
}

TEST_CASE("overlong lines are refused and the session goes on") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("NOOP " + std::string(5000, 'x') + "\r\nNOOP\r\n");
    CHECK(co_await c.reply() == "500 5.5.6 Line too long");
    CHECK(code(co_await c.reply()) == "250");
    // A line without an end at all: still bounded; the server never buffers past its cap.
    co_await c.send(std::string(200000, 'y'));
    co_await c.send("\r\nQUIT\r\n");
    CHECK(code(co_await c.reply()) == "500");
    CHECK(code(co_await c.reply()) == "221");
  });
}

TEST_CASE("too many errors close the session with 421") {
  smtp::server_options o;
  o.max_errors = 5;
  fixture f(o);
  converse(f, [](client& c) -> task<void> {
    std::string junk;
    for (int i = 0; i < 10; ++i) junk += "BOGUS\r\n";
    co_await c.send(junk);
    auto all = co_await c.rest();
    CHECK(all.find("421 4.7.0") != std::string::npos);
    auto count = [&](std::string const& s) {
      std::size_t n = 0;
      for (auto p = all.find(s); p != std::string::npos; p = all.find(s, p + 1)) ++n;
      return n;
    };
    CHECK(count("500 ") == 5);
  });
}

TEST_CASE("size limit: declared and actual") {
  smtp::server_options o;
  o.max_message_size = 100;
  fixture f(o);
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org> SIZE=101\r\n");
    (void)co_await c.reply();
    CHECK(co_await c.reply() == "552 5.3.4 Message size exceeds fixed limit");
    co_await c.send("MAIL FROM:<a@x.org> SIZE=50\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
    for (int i = 0; i < 3; ++i) (void)co_await c.reply();
    co_await c.send(std::string(5000, 'z') + "\r\n.\r\n");
    CHECK(code(co_await c.reply()) == "552");
    // The session is still in sync after the oversized message.
    co_await c.send("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
    for (int i = 0; i < 3; ++i) (void)co_await c.reply();
    co_await c.send("small\r\n.\r\n");
    CHECK(code(co_await c.reply()) == "250");
  });
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].body == "small\r\n");
}

TEST_CASE("BDAT chunks make one message; replies per chunk") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\n");
    for (int i = 0; i < 3; ++i) (void)co_await c.reply();
    co_await c.send("BDAT 7\r\nline\r\n.BDAT 0\r\nNOOP\r\nBDAT 8 LAST\r\n\r\nend\n\r\n");
    CHECK(co_await c.reply() == "250 2.0.0 7 octets received");
    CHECK(co_await c.reply() == "250 2.0.0 0 octets received");
    CHECK(code(co_await c.reply()) == "250");  // NOOP inside the transaction
    CHECK(co_await c.reply() == "250 2.0.0 Ok: queued as TEST");
  });
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].body == "line\r\n.\r\nend\n\r\n");  // BDAT is binary-transparent
}

TEST_CASE("BDAT: RSET aborts, no transaction discards, absurd sizes close") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\n");
    for (int i = 0; i < 3; ++i) (void)co_await c.reply();
    co_await c.send("BDAT 3\r\nabcRSET\r\n");
    CHECK(co_await c.reply() == "250 2.0.0 3 octets received");
    CHECK(co_await c.reply() == "250 2.0.0 Ok");  // the RSET
    co_await c.send("BDAT 12 LAST\r\nMAIL FROM:<>NOOP\r\n");  // no transaction: bytes skipped
    CHECK(code(co_await c.reply()) == "503");
    CHECK(code(co_await c.reply()) == "250");
    co_await c.send("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nBDAT 18446744073709551615 LAST\r\n");
    (void)co_await c.reply();
    (void)co_await c.reply();
    CHECK(co_await c.reply() == "552 5.3.4 Message size exceeds fixed limit");
    CHECK(co_await c.rest() == "");
  });
  CHECK(f.be->messages.empty());
}

TEST_CASE("recipient limit") {
  smtp::server_options o;
  o.max_recipients = 2;
  fixture f(o);
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\nRCPT TO:<d@x.org>\r\n");
    for (int i = 0; i < 4; ++i) (void)co_await c.reply();
    CHECK(co_await c.reply() == "452 4.5.3 Too many recipients");
  });
}

TEST_CASE("UTF-8 recipients need SMTPUTF8 on MAIL") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<j\xc3\xb8rn@x.org>\r\nRSET\r\n");
    for (int i = 0; i < 2; ++i) (void)co_await c.reply();
    CHECK(code(co_await c.reply()) == "553");
    (void)co_await c.reply();
    co_await c.send("MAIL FROM:<a@x.org> SMTPUTF8\r\nRCPT TO:<j\xc3\xb8rn@x.org>\r\n");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "250");
  });
}

TEST_CASE("clients that talk before the greeting are refused") {
  smtp::server_options o;
  o.greet_delay = 300ms;
  fixture f(o);
  testing::run(f.io, [&]() -> task<void> {
    auto c = co_await client::connect(f.ep);
    co_await c.send("EHLO eager\r\n");
    auto r = co_await c.reply();
    CHECK(r.substr(0, 9) == "554 5.5.1");
    CHECK(co_await c.rest() == "");
  }());
  testing::run(f.io, [&]() -> task<void> {
    auto c = co_await client::connect(f.ep);
    CHECK(code(co_await c.reply()) == "220");  // a patient client is greeted
  }());
}

TEST_CASE("idle clients time out with 421") {
  smtp::server_options o;
  o.command_timeout = 200ms;
  fixture f(o);
  converse(f, [](client& c) -> task<void> {
    CHECK(co_await c.reply() == "421 4.4.2 localhost Error: timeout exceeded");
  });
}

TEST_CASE("HTTP on the SMTP port is cut short") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(code(co_await c.reply()) == "421");
    CHECK(co_await c.rest() == "");
  });
}

TEST_CASE("the backend can refuse a connection") {
  struct refusing final : smtp::backend {
    task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const&) override {
      co_return unexpected(smtp::reply{554, {5, 7, 1}, "Go away"});
    }
  };
  asio::io_context io;
  smtp::server srv(io.get_executor(), std::make_shared<refusing>(), {},
                   log::logger(std::make_shared<log::null_sink>(), log::level::off));
  auto ep = srv.listen({.endpoint = {asio::ip::make_address("127.0.0.1"), 0}}).value();
  testing::run(io, [&]() -> task<void> {
    auto c = co_await client::connect(ep);
    CHECK(co_await c.reply() == "554 5.7.1 Go away");
    CHECK(co_await c.rest() == "");
  }());
}

TEST_CASE("AUTH: refused without TLS, allowed on a plaintext-auth listener") {
  auto users = std::make_shared<auth::memory_backend>();
  users->add_user("alice", "wonderland");
  smtp::server_options o;
  o.auth = users;
  {
    fixture f(o);
    converse(f, [](client& c) -> task<void> {
      co_await c.send("EHLO x\r\n");
      CHECK((co_await c.reply()).find("AUTH") == std::string::npos);
      co_await c.send("AUTH PLAIN " + base64::encode(std::string("\0alice\0wonderland", 17)) + "\r\n");
      CHECK(code(co_await c.reply()) == "538");
    });
  }
  smtp::listener_options lo;
  lo.allow_plaintext_auth = true;
  lo.require_auth = true;
  fixture f(o, lo);
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\n");
    CHECK((co_await c.reply()).find("AUTH SCRAM-SHA-256 PLAIN LOGIN") != std::string::npos);
    co_await c.send("MAIL FROM:<a@x.org>\r\n");
    CHECK(co_await c.reply() == "530 5.7.0 Authentication required");
    co_await c.send("AUTH PLAIN " + base64::encode(std::string("\0alice\0wrong", 12)) + "\r\n");
    CHECK(co_await c.reply() == "535 5.7.8 Authentication credentials invalid");
    co_await c.send("AUTH LOGIN\r\n");
    CHECK(co_await c.reply() == "334 " + base64::encode("Username:"));
    co_await c.send(base64::encode("alice") + "\r\n");
    CHECK(co_await c.reply() == "334 " + base64::encode("Password:"));
    co_await c.send(base64::encode("wonderland") + "\r\n");
    CHECK(co_await c.reply() == "235 2.7.0 Authentication successful");
    co_await c.send("AUTH PLAIN\r\n");
    CHECK(code(co_await c.reply()) == "503");
    co_await c.send("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
    for (int i = 0; i < 3; ++i) (void)co_await c.reply();
    co_await c.send("hi\r\n.\r\n");
    CHECK(code(co_await c.reply()) == "250");
  });
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].user == "alice");
}

TEST_CASE("AUTH: cancel, bad base64, unknown mechanism, too many failures") {
  auto users = std::make_shared<auth::memory_backend>();
  users->add_user("alice", "wonderland");
  smtp::server_options o;
  o.auth = users;
  o.max_auth_failures = 2;
  smtp::listener_options lo;
  lo.allow_plaintext_auth = true;
  fixture f(o, lo);
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\n");
    (void)co_await c.reply();
    co_await c.send("AUTH CRAM-MD5\r\n");
    CHECK(code(co_await c.reply()) == "504");
    co_await c.send("AUTH PLAIN\r\n");
    CHECK(co_await c.reply() == "334 ");
    co_await c.send("*\r\n");
    CHECK(code(co_await c.reply()) == "501");
    co_await c.send("AUTH PLAIN\r\n");
    (void)co_await c.reply();
    co_await c.send("!!!notbase64\r\n");
    CHECK(code(co_await c.reply()) == "501");
    co_await c.send("AUTH PLAIN " + base64::encode(std::string("\0alice\0x", 8)) + "\r\n");
    CHECK(code(co_await c.reply()) == "535");
    co_await c.send("AUTH PLAIN " + base64::encode(std::string("\0bob\0x", 6)) + "\r\n");
    CHECK(code(co_await c.reply()) == "535");
    CHECK(code(co_await c.reply()) == "421");
  });
}

TEST_CASE("shutdown greets idle sessions with 421 and stops accepting") {
  fixture f;
  testing::run(f.io, [&]() -> task<void> {
    auto c = co_await client::connect(f.ep);
    CHECK(code(co_await c.reply()) == "220");
    co_await c.send("EHLO x\r\n");
    (void)co_await c.reply();
    asio::co_spawn(f.io, f.srv->shutdown(2s), asio::detached);
    auto r = co_await c.reply();
    CHECK(r.substr(0, 9) == "421 4.3.2");
    CHECK(co_await c.rest() == "");
    auto ex = co_await asio::this_coro::executor;
    auto again = co_await net::tcp_stream::connect(ex, f.ep, 2s);
    CHECK_FALSE(again);
  }());
  CHECK(f.srv->active_sessions() == 0);
}

TEST_CASE("STARTTLS: pipelined plaintext after the command is discarded, state is reset") {
  auto kp = net::tls::generate_self_signed({"mx.test"}).value();
  smtp::server_options o;
  o.tls = net::tls::server_context::create(kp).value();
  fixture f(o);
  auto client_ctx = net::tls::client_context::create_with_trust(net::tls::verify_mode::required, kp.cert_pem).value();
  converse(f, [&](client& c) -> task<void> {
    co_await c.send("EHLO x\r\n");
    CHECK((co_await c.reply()).find("STARTTLS") != std::string::npos);
    co_await c.send("STARTTLS\r\nMAIL FROM:<injected@x.org>\r\n");
    CHECK(co_await c.reply() == "220 2.0.0 Ready to start TLS");
    auto t = co_await net::tls::connect(client_ctx, std::move(c.s), "mx.test");
    REQUIRE(t);
    c.s = std::move(*t);
    c.r.discard_buffered();
    co_await c.send("MAIL FROM:<a@x.org>\r\n");  // EHLO must come again after TLS
    CHECK(code(co_await c.reply()) == "503");
    co_await c.send("EHLO x\r\n");
    auto ehlo = co_await c.reply();
    CHECK(ehlo.find("STARTTLS") == std::string::npos);
    co_await c.send("MAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
    CHECK(code(co_await c.reply()) == "250");  // not "nested MAIL": the injected one never ran
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "354");
    co_await c.send("secret\r\n.\r\nSTARTTLS\r\n");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "554");  // TLS already active
  });
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].from == "a@x.org");
  CHECK(f.be->messages[0].tls);
}

TEST_CASE("on_tls can refuse a session after the handshake") {
  struct tls_refuser final : smtp::backend {
    struct handler final : smtp::session_handler {
      task<smtp::reply> on_tls(net::tls_details const& t) override {
        CHECK(t.version == "TLSv1.2");
        co_return smtp::reply{421, {4, 7, 0}, "TLS policy says no"};
      }
      task<smtp::reply> on_data(smtp::message_source&) override { co_return smtp::replies::local_error(); }
    };
    task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const&) override {
      co_return std::make_unique<handler>();
    }
  };
  auto kp = net::tls::generate_self_signed({"mx.test"}).value();
  smtp::server_options o;
  o.tls = net::tls::server_context::create(kp).value();
  asio::io_context io;
  smtp::server srv(io.get_executor(), std::make_shared<tls_refuser>(), o,
                   log::logger(std::make_shared<log::null_sink>(), log::level::off));
  auto ep = srv.listen({.endpoint = {asio::ip::make_address("127.0.0.1"), 0}}).value();
  auto cctx = net::tls::client_context::create(net::tls::verify_mode::none).value();
  testing::run(io, [&]() -> task<void> {
    auto c = co_await client::connect(ep);
    CHECK(code(co_await c.reply()) == "220");
    co_await c.send("STARTTLS\r\n");
    CHECK(code(co_await c.reply()) == "220");
    auto t = co_await net::tls::connect(cctx, std::move(c.s), "mx.test");
    REQUIRE(t);
    c.s = std::move(*t);
    CHECK(co_await c.reply() == "421 4.7.0 TLS policy says no");
    CHECK(co_await c.rest() == "");
  }());
}

TEST_CASE("DSN and AUTH parameters cannot smuggle control characters; AUTH= is untrusted before AUTH") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org> ENVID=x+0D+0AX-Injected:+201\r\n");
    (void)co_await c.reply();
    CHECK(code(co_await c.reply()) == "501");
    co_await c.send("MAIL FROM:<a@x.org> AUTH=admin+40x.org\r\n");
    CHECK(code(co_await c.reply()) == "250");
    co_await c.send("RCPT TO:<b@x.org> ORCPT=rfc822;a+0D+0ABcc:+20evil@x.org\r\n");
    CHECK(code(co_await c.reply()) == "501");
    co_await c.send("RCPT TO:<b@x.org> ORCPT=rfc\r822;a@x.org\r\n");
    CHECK(code(co_await c.reply()) == "501");
    co_await c.send("RCPT TO:<b@x.org> ORCPT=rfc822;b+40x.org\r\nDATA\r\n");
    CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "354");
    co_await c.send("x\r\n.\r\n");
    CHECK(code(co_await c.reply()) == "250");
  });
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].auth_param == "<>");
}

TEST_CASE("BDAT: command lines between chunks must end with CRLF too") {
  fixture f;
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\n");
    for (int i = 0; i < 3; ++i) (void)co_await c.reply();
    co_await c.send("BDAT 3\r\nabcBDAT 2 LAST\nxy");
    CHECK(co_await c.reply() == "250 2.0.0 3 octets received");
    CHECK(code(co_await c.reply()) == "500");
  });
  CHECK(f.be->messages.empty());
}

TEST_CASE("max_message_size 0 means no limit") {
  smtp::server_options o;
  o.max_message_size = 0;
  fixture f(o);
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nMAIL FROM:<a@x.org> SIZE=99999999999\r\nRCPT TO:<b@x.org>\r\nDATA\r\n");
    for (int i = 0; i < 3; ++i) CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "354");
    co_await c.send(std::string(100000, 'q') + "\r\n.\r\n");
    CHECK(code(co_await c.reply()) == "250");
  });
  CHECK(f.be->messages.size() == 1);
}

TEST_CASE("a client trickling a command line is cut off after command_timeout") {
  smtp::server_options o;
  o.command_timeout = 600ms;
  fixture f(o);
  converse(f, [](client& c) -> task<void> {
    auto start = std::chrono::steady_clock::now();
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex);
    for (int i = 0; i < 12; ++i) {  // one byte every 150 ms: each read is quick, the line is not
      if (!co_await c.try_send("N")) break;  // the server hung up
      t.expires_after(150ms);
      co_await t.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
    CHECK(co_await c.reply() == "421 4.4.2 localhost Error: timeout exceeded");
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  });
}

TEST_CASE("AUTH lines may be longer than other commands (RFC 4954 4)") {
  auto users = std::make_shared<auth::memory_backend>();
  users->add_user("alice", "wonderland");
  smtp::server_options o;
  o.auth = users;
  smtp::listener_options lo;
  lo.allow_plaintext_auth = true;
  fixture f(o, lo);
  converse(f, [](client& c) -> task<void> {
    co_await c.send("EHLO x\r\nNOOP " + std::string(3000, 'n') + "\r\n");
    (void)co_await c.reply();
    CHECK(co_await c.reply() == "500 5.5.6 Line too long");
    // 3000 bytes of PLAIN: the line is read whole and the mechanism refuses the oversized field.
    co_await c.send("AUTH PLAIN " + base64::encode(std::string("\0alice\0", 7) + std::string(2200, 'p')) + "\r\n");
    CHECK(code(co_await c.reply()) == "501");
  });
}

TEST_CASE("shutdown does not wait for a TLS handshake that never comes; handshakes have a deadline") {
  auto kp = net::tls::generate_self_signed({"mx.test"}).value();
  smtp::server_options o;
  o.tls = net::tls::server_context::create(kp).value();
  o.tls_handshake_timeout = 400ms;
  smtp::listener_options lo;
  lo.mode = smtp::security::implicit_tls;
  fixture f(o, lo);
  testing::run(f.io, [&]() -> task<void> {
    auto c = co_await client::connect(f.ep);  // sends no ClientHello
    auto start = std::chrono::steady_clock::now();
    CHECK(co_await c.rest() == "");  // closed by the handshake deadline
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    auto c2 = co_await client::connect(f.ep);
    start = std::chrono::steady_clock::now();
    co_await f.srv->shutdown(5s);
    CHECK(std::chrono::steady_clock::now() - start < 300ms);
  }());
}

TEST_CASE("LMTP: LHLO, and one reply per accepted recipient after DATA and BDAT") {
  struct per_rcpt final : smtp::backend {
    int delivered = 0;
    struct handler final : smtp::session_handler {
      per_rcpt& be;
      std::vector<std::string> rcpts;
      explicit handler(per_rcpt& b) : be(b) {}
      task<smtp::reply> on_rcpt(address const& to, smtp::rcpt_params const&) override {
        if (to.local == "nobody") co_return smtp::replies::mailbox_unavailable();
        rcpts.push_back(to.local);
        co_return smtp::replies::recipient_ok();
      }
      task<smtp::reply> on_data(smtp::message_source&) override { co_return smtp::replies::local_error(); }
      task<std::vector<smtp::reply>> on_data_per_recipient(smtp::message_source& body, std::size_t n) override {
        auto all = co_await smtp::read_all(body);
        CHECK(all);
        std::vector<smtp::reply> out;
        for (auto const& r : rcpts) {
          if (r == "full") {
            out.push_back(smtp::reply{452, {4, 2, 2}, "Mailbox full"});
          } else {
            ++be.delivered;
            out.push_back(smtp::replies::ok("Delivered to " + r));
          }
        }
        if (rcpts.size() == 3) out.pop_back();  // a buggy handler: wrong count
        CHECK(n == rcpts.size());
        co_return out;
      }
      void on_reset() override { rcpts.clear(); }
    };
    task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const&) override {
      co_return std::make_unique<handler>(*this);
    }
  };
  asio::io_context io;
  auto be = std::make_shared<per_rcpt>();
  smtp::server srv(io.get_executor(), be, {}, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  auto ep = srv.listen({.endpoint = {asio::ip::make_address("127.0.0.1"), 0}, .proto = smtp::protocol::lmtp}).value();
  testing::run(io, [&]() -> task<void> {
    auto c = co_await client::connect(ep);
    CHECK(co_await c.reply() == "220 localhost LMTP mailroom");
    co_await c.send("EHLO x\r\nLHLO x\r\n");
    CHECK(code(co_await c.reply()) == "500");
    CHECK((co_await c.reply()).find("250-PIPELINING") != std::string::npos);
    co_await c.send("MAIL FROM:<a@x.org>\r\nRCPT TO:<u1@x.org>\r\nRCPT TO:<nobody@x.org>\r\nRCPT TO:<full@x.org>\r\nDATA\r\n");
    for (auto want : {"250", "250", "550", "250", "354"}) CHECK(code(co_await c.reply()) == want);
    co_await c.send("hi\r\n.\r\n");
    CHECK(co_await c.reply() == "250 2.0.0 Delivered to u1");
    CHECK(co_await c.reply() == "452 4.2.2 Mailbox full");
    co_await c.send("MAIL FROM:<a@x.org>\r\nRCPT TO:<u2@x.org>\r\nRCPT TO:<u3@x.org>\r\nBDAT 4 LAST\r\nhi\r\n");
    for (int i = 0; i < 3; ++i) CHECK(code(co_await c.reply()) == "250");
    CHECK(co_await c.reply() == "250 2.0.0 Delivered to u2");
    CHECK(co_await c.reply() == "250 2.0.0 Delivered to u3");
    co_await c.send("MAIL FROM:<a@x.org>\r\nRCPT TO:<u4@x.org>\r\nRCPT TO:<u5@x.org>\r\nRCPT TO:<u6@x.org>\r\nDATA\r\n");
    for (int i = 0; i < 4; ++i) CHECK(code(co_await c.reply()) == "250");
    CHECK(code(co_await c.reply()) == "354");
    co_await c.send("x\r\n.\r\n");
    for (int i = 0; i < 3; ++i) CHECK(code(co_await c.reply()) == "451");  // the handler's count was wrong
  }());
  CHECK(be->delivered == 6);
}

TEST_CASE("LMTP: a message that fails as a whole fails for every recipient") {
  smtp::server_options o;
  o.max_message_size = 10;
  fixture f(o, {.endpoint = {}, .proto = smtp::protocol::lmtp});
  converse(f, [](client& c) -> task<void> {
    co_await c.send("LHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\nDATA\r\n");
    for (int i = 0; i < 4; ++i) (void)co_await c.reply();
    CHECK(code(co_await c.reply()) == "354");
    co_await c.send(std::string(100, 'x') + "\r\n.\r\n");
    CHECK(code(co_await c.reply()) == "552");
    CHECK(code(co_await c.reply()) == "552");
    co_await c.send("NOOP\r\n");
    CHECK(code(co_await c.reply()) == "250");
  });
  CHECK(f.be->messages.empty());
}

TEST_CASE("failed AUTH answers slow down per client IP, across sessions") {
  auto users = std::make_shared<auth::memory_backend>();
  users->add_user("alice", "wonderland");
  smtp::server_options o;
  o.auth = users;
  auth::throttle::options t;
  t.base_delay = 150ms;
  t.max_delay = 300ms;
  o.auth_throttle = std::make_shared<auth::throttle>(t);
  smtp::listener_options lo;
  lo.allow_plaintext_auth = true;
  fixture f(o, lo);
  auto bad = "AUTH PLAIN " + base64::encode(std::string("\0alice\0nope", 12)) + "\r\n";
  auto timed = [&](std::string const& cmd) -> task<std::chrono::steady_clock::duration> {
    auto c = co_await client::connect(f.ep);
    (void)co_await c.reply();
    co_await c.send("EHLO x\r\n");
    (void)co_await c.reply();
    auto start = std::chrono::steady_clock::now();
    co_await c.send(cmd);
    (void)co_await c.reply();
    co_return std::chrono::steady_clock::now() - start;
  };
  testing::run(f.io, [&]() -> task<void> {
    auto first = co_await timed(bad);   // 150 ms
    auto second = co_await timed(bad);  // a new session, same IP: 300 ms
    CHECK(first >= 140ms);
    CHECK(second >= 290ms);
    CHECK(o.auth_throttle->failures(asio::ip::make_address("127.0.0.1")) == 2);
    (void)co_await timed("AUTH PLAIN " + base64::encode(std::string("\0alice\0wonderland", 17)) + "\r\n");
    CHECK(o.auth_throttle->failures(asio::ip::make_address("127.0.0.1")) == 0);  // success clears it
  }());
}
