#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "mailroom/queue/spool.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;
namespace fs = std::filesystem;

namespace {
using testing::no_context;
using testing::no_params;
using testing::string_source;



struct fixture {
  testing::temp_dir dir;
  blocking_pool pool{2};
  asio::io_context io;
  std::shared_ptr<queue::spool> sp =
      queue::spool::open(dir.path() + "/q", pool, log::logger(std::make_shared<log::null_sink>(), log::level::off)).value();

  std::string enqueue(delivery::message_context const& ctx, address from, std::vector<address> rcpts, std::string body) {
    return testing::run(io, [&]() -> task<std::string> {
      auto d = (co_await sp->start(ctx, from)).value();
      for (auto const& r : rcpts) CHECK_FALSE(co_await d->add_rcpt(r, no_params));
      string_source src(body);
      REQUIRE(co_await d->body(src));
      co_return (co_await d->commit()).value();
    }());
  }
};

std::size_t files_in(std::string const& d) {
  return static_cast<std::size_t>(std::distance(fs::directory_iterator(d), fs::directory_iterator{}));
}

}  // namespace

TEST_CASE("a committed message reads back: envelope and body, byte for byte") {
  fixture f;
  delivery::message_context ctx;
  ctx.client = {asio::ip::make_address("192.0.2.1"), 4321};
  ctx.helo = "client.example";
  ctx.protocol = "ESMTPSA";
  ctx.auth_user = "alice";
  ctx.params.size = 1234;
  ctx.params.body = smtp::body_type::eight_bit_mime;
  ctx.params.smtputf8 = true;
  ctx.params.ret = smtp::dsn_ret::headers;
  ctx.params.envid = "QQ1";
  std::string body = "Subject: x\r\n\r\n.dot\r\n\0nul\r\n";
  body += std::string(100000, 'b');
  auto id = f.enqueue(ctx, {"a", "example.org"}, {{"b", "example.net"}, {"jörg", "bücher.example"}}, body);
  CHECK(files_in(f.sp->root() + "/incoming") == 1);
  CHECK(files_in(f.sp->root() + "/tmp") == 0);
  CHECK(f.sp->list(queue::state::incoming).value() == std::vector<std::string>{id});
  auto m = f.sp->read(queue::state::incoming, id).value();
  CHECK(m.env.id == id);
  CHECK(m.env.sender.to_string() == "a@example.org");
  REQUIRE(m.env.recipients.size() == 2);
  CHECK(m.env.recipients[1].addr.local == "jörg");
  CHECK(m.env.client == "192.0.2.1:4321");
  CHECK(m.env.helo == "client.example");
  CHECK(m.env.protocol == "ESMTPSA");
  CHECK(m.env.auth_user == "alice");
  CHECK(*m.env.params.size == 1234);
  CHECK(m.env.params.body == smtp::body_type::eight_bit_mime);
  CHECK(m.env.params.smtputf8);
  CHECK(m.env.params.ret == smtp::dsn_ret::headers);
  CHECK(m.env.params.envid == "QQ1");
  CHECK(m.body_size == body.size());
  CHECK(f.sp->read_body(m).value() == body);
}

TEST_CASE("CR, LF and NUL in any field cannot forge another field") {
  queue::envelope e;
  e.id = "ID1";
  e.sender = {"x", "example.org"};
  e.recipients.push_back({{"r", "example.org"}, {}});
  e.helo = "evil\nR 13:v@victim.test\nE 0:\n";
  e.auth_user = std::string("a\0b\r\n", 5);
  e.recipients[0].params.orcpt_type = "rfc822";
  e.recipients[0].params.orcpt = "o\r\nR 1:x";
  auto enc = queue::encode_envelope(e);
  std::size_t used = 0;
  auto d = queue::decode_envelope(enc, &used).value();
  CHECK(used == enc.size());
  CHECK(d.helo == e.helo);
  CHECK(d.auth_user == e.auth_user);
  REQUIRE(d.recipients.size() == 1);
  CHECK(d.recipients[0].params.orcpt == "o\r\nR 1:x");
}

TEST_CASE("damaged queue files go to corrupt/, with a clear error, once") {
  fixture f;
  auto id = f.enqueue({}, {"a", "example.org"}, {{"b", "example.net"}}, "hello\r\n");
  auto file = f.sp->path(queue::state::incoming, id);
  auto good = testing::read_file(file);
  queue::envelope no_rcpts;
  no_rcpts.id = "x";
  no_rcpts.sender = {"a", "b.c"};
  struct variant {
    char const* name;
    std::string content;
  };
  std::vector<variant> damaged = {
      {"truncated body", good.substr(0, good.size() - 10)},
      {"no footer", good.substr(0, good.size() - 40)},
      {"bad magic", "X" + good.substr(1)},
      {"huge length", std::string("MAILROOM-QUEUE 1\nI 99999999999:x\n")},
      {"length past end", std::string("MAILROOM-QUEUE 1\nI 50:x\n")},
      {"no recipients", queue::encode_envelope(no_rcpts)},
      {"empty", ""},
      {"garbage", std::string(5000, '\xff')},
  };
  for (auto const& v : damaged) {
    CAPTURE(v.name);
    std::ofstream(file, std::ios::trunc | std::ios::binary) << v.content;
    auto r = f.sp->read(queue::state::incoming, id);
    CHECK_FALSE(r);
    CHECK_FALSE(fs::exists(file));
    CHECK(fs::exists(f.sp->path(queue::state::corrupt, id)));
    fs::rename(f.sp->path(queue::state::corrupt, id), file);
  }
  std::ofstream(file, std::ios::trunc | std::ios::binary) << good;
  CHECK(f.sp->read(queue::state::incoming, id));
}

TEST_CASE("recover(): interrupted deliveries return to incoming, partial files vanish") {
  fixture f;
  auto a = f.enqueue({}, {}, {{"b", "example.net"}}, "one\r\n");
  auto b = f.enqueue({}, {}, {{"b", "example.net"}}, "two\r\n");
  CHECK(a < b);  // ids sort by arrival
  testing::run(f.io, [&]() -> task<void> {
    REQUIRE(co_await f.sp->move(a, queue::state::incoming, queue::state::active));
    REQUIRE(co_await f.sp->move(b, queue::state::incoming, queue::state::hold));
  }());
  std::ofstream(f.sp->root() + "/tmp/partial") << "MAILROOM-QUEUE 1\nI 3:abc";
  auto n = testing::run(f.io, f.sp->recover()).value();
  CHECK(n == 1);
  CHECK(f.sp->list(queue::state::incoming).value() == std::vector<std::string>{a});
  CHECK(f.sp->list(queue::state::hold).value() == std::vector<std::string>{b});
  CHECK(files_in(f.sp->root() + "/tmp") == 0);
  CHECK(f.sp->read(queue::state::incoming, a).value().env.sender.is_null());
}

TEST_CASE("an aborted or abandoned delivery leaves nothing; many concurrent commits all land") {
  fixture f;
  testing::run(f.io, [&]() -> task<void> {
    address const from{"a", "x.org"}, to{"b", "x.org"};
    auto d = (co_await f.sp->start(no_context, from)).value();
    (void)co_await d->add_rcpt(to, no_params);
    string_source src("partial\r\n");
    REQUIRE(co_await d->body(src));
    d->abort();
    auto e = (co_await f.sp->start(no_context, from)).value();  // destroyed without commit
  }());
  CHECK(files_in(f.sp->root() + "/tmp") == 0);
  CHECK(files_in(f.sp->root() + "/incoming") == 0);
  int done = 0;
  for (int i = 0; i < 40; ++i)
    asio::co_spawn(f.io, [&, i]() -> task<void> {
      address const from{"a", "x.org"}, to{"b" + std::to_string(i), "x.org"};
      auto d = (co_await f.sp->start(no_context, from)).value();
      (void)co_await d->add_rcpt(to, no_params);
      string_source src("message " + std::to_string(i) + "\r\n");
      REQUIRE(co_await d->body(src));
      REQUIRE(co_await d->commit());
      ++done;
    }, asio::detached);
  f.io.restart();
  f.io.run_for(std::chrono::seconds(30));
  CHECK(done == 40);
  CHECK(f.sp->list(queue::state::incoming).value().size() == 40);
}

TEST_CASE("a declared SIZE larger than the free space is refused at start, as out of space") {
  fixture f;
  testing::run(f.io, [&]() -> task<void> {
    address const from{"a", "x.org"};
    delivery::message_context huge;
    huge.params.size = std::uint64_t{1} << 60;  // an exabyte: no file system has that free
    auto d = co_await f.sp->start(huge, from);
    REQUIRE_FALSE(d);
    CHECK(d.error() == std::errc::no_space_on_device);
    delivery::message_context small;
    small.params.size = 1000;
    CHECK(co_await f.sp->start(small, from));
  }());
  CHECK(files_in(f.sp->root() + "/tmp") == 0);
}

TEST_CASE("delivery state round-trips: last reply, last error, last attempt, delay warning") {
  queue::envelope e;
  e.id = "ID2";
  e.sender = {"x", "example.org"};
  e.attempts = 3;
  e.delay_warned = 1'800'000'000;
  queue::recipient a({"a", "example.net"});
  a.last_attempt = 1'800'000'100;
  a.last_reply = smtp::reply{451, {4, 7, 1}, "greylisted\nsecond line \r\n"};
  queue::recipient b({"b", "example.net"});
  b.last_attempt = 1'800'000'200;
  b.last_error = "connection refused";
  queue::recipient c({"c", "example.net"});  // not tried yet
  c.last_reply = smtp::reply{550, {0, 0, 0}, ""};
  e.recipients = {a, b, c, queue::recipient({"d", "example.net"})};
  e.recipients[3].last_error = std::string(queue::max_state_text + 100, 'e');
  auto enc = queue::encode_envelope(e);
  std::size_t used = 0;
  auto d = queue::decode_envelope(enc, &used).value();
  CHECK(used == enc.size());
  CHECK(d.attempts == 3);
  CHECK(d.delay_warned == 1'800'000'000);
  REQUIRE(d.recipients.size() == 4);
  CHECK(d.recipients[0].last_attempt == 1'800'000'100);
  CHECK(d.recipients[0].last_reply == a.last_reply);
  CHECK(d.recipients[0].last_error.empty());
  CHECK(d.recipients[0].last_outcome() == "451 4.7.1 greylisted second line   ");
  CHECK(d.recipients[1].last_reply == std::nullopt);
  CHECK(d.recipients[1].last_error == "connection refused");
  CHECK(d.recipients[1].last_outcome() == "connection refused");
  CHECK(d.recipients[2].last_attempt == 0);
  CHECK(d.recipients[2].last_reply == c.last_reply);
  CHECK(d.recipients[2].last_outcome() == "550 ");
  CHECK(d.recipients[3].last_error.size() == queue::max_state_text);  // cut, so records stay bounded
}

TEST_CASE("queue files of the version before delivery state still read; unknown lower-case records are skipped") {
  // Written by the previous version (no lower-case records): read as "no state yet".
  std::string old = "MAILROOM-QUEUE 1\nI 3:ID3\nT 10:1700000000\nF 13:a@example.org\nP 8:RET=HDRS\nC 11:192.0.2.1:1\n"
                    "H 4:helo\nX 5:ESMTP\nA 0:\nK 1:2\nR 13:b@example.net\nN 1:6\nO 20:rfc822;b@example.net\n"
                    "R 13:c@example.net\nE 0:\n";
  std::size_t used = 0;
  auto d = queue::decode_envelope(old, &used).value();
  CHECK(used == old.size());
  CHECK(d.attempts == 2);
  CHECK(d.delay_warned == 0);
  REQUIRE(d.recipients.size() == 2);
  CHECK(d.recipients[0].params.notify == 6);
  CHECK(d.recipients[0].last_attempt == 0);
  CHECK_FALSE(d.recipients[0].last_reply);
  // A later version's optional records: skipped. Unknown upper-case ones: refused.
  auto later = old;
  later.insert(later.find("R 13:c"), "z 5:hello\n");
  CHECK(queue::decode_envelope(later, nullptr));
  auto unknown = old;
  unknown.insert(unknown.find("R 13:c"), "Z 5:hello\n");
  CHECK_FALSE(queue::decode_envelope(unknown, nullptr));
  // Malformed state records are refused like any malformed record.
  for (std::string bad : {"r 5:hello\n", "r 12:45 4.2 hello\n", "a 3:1x2\n", "w 0:\n", "r 9:4511.2.3 \n"}) {
    CAPTURE(bad);
    auto b = old;
    b.insert(b.find("R 13:c"), bad);
    CHECK_FALSE(queue::decode_envelope(b, nullptr));
  }
  // State before any recipient is refused.
  auto early = old;
  early.insert(early.find("R 13:b"), "e 1:x\n");
  CHECK_FALSE(queue::decode_envelope(early, nullptr));
}

TEST_CASE("many recipients with long replies: the envelope stays readable") {
  fixture f;
  std::vector<address> rcpts;
  for (int i = 0; i < 20000; ++i) rcpts.push_back({"user" + std::to_string(i), "example.net"});
  auto id = f.enqueue({}, {"a", "example.org"}, rcpts, "Subject: many\r\n\r\nx\r\n");
  auto m = f.sp->read(queue::state::incoming, id).value();
  auto env = m.env;
  for (auto& r : env.recipients) {
    r.last_attempt = 1'800'000'000;
    r.last_reply = smtp::reply{451, {4, 2, 0}, std::string(4000, 'r')};
  }
  testing::run(f.io, [&]() -> task<void> { REQUIRE(co_await f.sp->rewrite(queue::state::incoming, m, env)); }());
  auto back = f.sp->read(queue::state::incoming, id).value();
  REQUIRE(back.env.recipients.size() == 20000);
  auto kept = back.env.recipients[0].last_reply->text.size();
  CHECK(kept >= 128);
  CHECK(kept < 4000);
  CHECK(f.sp->read_body(back).value() == "Subject: many\r\n\r\nx\r\n");
}

TEST_CASE("hold() before commit: the message lands in hold/, not incoming/, and nobody is told") {
  fixture f;
  int queued = 0;
  f.sp->on_queued([&] { ++queued; });
  auto id = testing::run(f.io, [&]() -> task<std::string> {
    address const from{"a", "example.org"}, to{"b", "example.net"};
    auto d = (co_await f.sp->start(no_context, from)).value();
    CHECK_FALSE(co_await d->add_rcpt(to, no_params));
    string_source src("Subject: quarantined\r\n\r\nbody\r\n");
    REQUIRE(co_await d->body(src));
    CHECK(d->hold());
    co_return (co_await d->commit()).value();
  }());
  CHECK(files_in(f.sp->root() + "/incoming") == 0);
  CHECK(f.sp->list(queue::state::hold).value() == std::vector<std::string>{id});
  CHECK(queued == 0);
  auto m = f.sp->read(queue::state::hold, id).value();
  CHECK(m.env.recipients.size() == 1);
}
