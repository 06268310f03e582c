// smtp::client against mailroom's own smtp::server (every feature), against scripted hostile
// servers (limits, deadlines, garbage), and against Postfix's smtp-sink, a real peer.
#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/auth/backend.hpp"
#include "mailroom/net/error.hpp"
#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/sasl/server.hpp"
#include "mailroom/smtp/client.hpp"
#include "mailroom/smtp/error.hpp"
#include "mailroom/smtp/server.hpp"
#include "support/helpers.hpp"
#include "support/skip_listener.hpp"

extern char** environ;

using namespace mailroom;
using namespace std::chrono_literals;
using smtp::reply;

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

log::logger test_logger() {
  return log::logger(std::make_shared<log::stderr_sink>(), std::getenv("MR_TRACE") ? log::level::trace : log::level::off);
}

address addr(std::string_view s) {
  auto at = s.rfind('@');
  if (at == std::string_view::npos) return address{std::string(s), {}};
  return address{std::string(s.substr(0, at)), std::string(s.substr(at + 1))};
}

smtp::outgoing make_tx(std::string_view from, std::vector<std::string_view> to) {
  smtp::outgoing tx;
  tx.from = addr(from);
  for (auto t : to) tx.rcpts.emplace_back(addr(t), smtp::rcpt_params{});
  return tx;
}

/// A message body from memory, handed out in pieces of `piece` bytes (odd sizes cut CRLF pairs
/// and dot-lines apart); fails with `fail_with` after `fail_after` bytes when set.
class string_source final : public smtp::message_source {
 public:
  explicit string_source(std::string data, std::size_t piece = 7) : data_(std::move(data)), piece_(piece) {}
  std::error_code fail_with;
  std::size_t fail_after = SIZE_MAX;

  task<result<std::span<char const>>> read() override {
    if (pos_ >= fail_after && fail_with) co_return fail(fail_with);
    auto n = std::min({piece_, data_.size() - pos_, fail_after - pos_});
    std::span<char const> out(data_.data() + pos_, n);
    pos_ += n;
    co_return out;
  }
  std::uint64_t size() const noexcept override { return pos_; }

 private:
  std::string data_;
  std::size_t piece_;
  std::size_t pos_ = 0;
};

// ---- mailroom's own server with a recording backend ----------------------------------------------

struct recorded {
  std::string from;
  smtp::mail_params params;
  std::vector<std::string> rcpts;
  std::vector<smtp::rcpt_params> rcpt_params;
  std::string body;
  bool tls = false;
  std::string user;
};

struct recording_backend final : smtp::backend {
  std::vector<recorded> messages;
  int mails = 0;  // MAIL commands that reached the handler

  struct handler final : smtp::session_handler {
    recording_backend& be;
    smtp::session_info const& info;
    recorded current;
    handler(recording_backend& b, smtp::session_info const& i) : be(b), info(i) {}

    task<reply> on_mail(address const& from, smtp::mail_params const& params) override {
      ++be.mails;
      if (from.local == "refused") co_return reply{550, {5, 7, 1}, "Sender refused"};
      current = {};
      current.from = from.to_string();
      current.params = params;
      co_return smtp::replies::sender_ok();
    }
    task<reply> on_rcpt(address const& to, smtp::rcpt_params const& params) override {
      if (to.local == "nobody") co_return smtp::replies::mailbox_unavailable();
      if (to.local == "later") co_return reply{450, {4, 2, 1}, "Try later"};
      current.rcpts.push_back(to.to_string());
      current.rcpt_params.push_back(params);
      co_return smtp::replies::recipient_ok();
    }
    void take(std::string body) {
      current.body = std::move(body);
      current.tls = info.tls.has_value();
      current.user = info.auth ? info.auth->user : "";
      be.messages.push_back(current);
    }
    task<reply> on_data(smtp::message_source& body) override {
      auto all = co_await smtp::read_all(body);
      if (!all) co_return smtp::replies::local_error();
      take(std::move(*all));
      co_return smtp::replies::queued("TEST");
    }
    // LMTP: "full" mailboxes refuse after the message, the others get it.
    task<std::vector<reply>> on_data_per_recipient(smtp::message_source& body, std::size_t n) override {
      auto all = co_await smtp::read_all(body);
      std::vector<reply> out;
      if (!all) co_return std::vector<reply>(n, smtp::replies::local_error());
      for (auto const& r : current.rcpts)
        out.push_back(r.starts_with("full@") ? reply{452, {4, 2, 2}, "Mailbox full"} : smtp::replies::ok("Delivered to " + r));
      take(std::move(*all));
      co_return out;
    }
    void on_reset() override { current.rcpts.clear(); }
  };

  task<expected<std::unique_ptr<smtp::session_handler>, reply>> new_session(smtp::session_info const& info) override {
    co_return std::make_unique<handler>(*this, info);
  }
};

struct fixture {
  asio::io_context io;
  std::shared_ptr<recording_backend> be = std::make_shared<recording_backend>();
  std::unique_ptr<smtp::server> srv;
  asio::ip::tcp::endpoint ep;

  explicit fixture(smtp::server_options opts = {}, smtp::listener_options lo = {}) {
    if (!opts.auth_throttle) opts.auth_throttle = testing::fast_throttle();
    srv = std::make_unique<smtp::server>(io.get_executor(), be, std::move(opts), test_logger());
    lo.endpoint = {asio::ip::make_address("127.0.0.1"), 0};
    ep = srv->listen(lo).value();
  }
};

/// What one connection did: hello's outcome, then (when hello succeeded) the transaction's.
struct outcome {
  result<std::optional<reply>> hello;
  std::optional<result<smtp::transaction_result>> sent;
  smtp::extensions ext;
  bool tls = false;

  smtp::transaction_result const& tx() const {
    REQUIRE(hello);
    REQUIRE(!*hello);
    REQUIRE(sent);
    REQUIRE(*sent);
    return **sent;
  }
};

/// Connects, says hello, sends one transaction if hello succeeded, quits.
task<outcome> deliver(asio::ip::tcp::endpoint ep, smtp::client_options const& o, smtp::outgoing const& tx,
                      std::string const& body, std::size_t piece = 7) {
  outcome out;
  auto ex = co_await asio::this_coro::executor;
  auto s = co_await net::tcp_stream::connect(ex, ep, 5s);
  REQUIRE(s);
  smtp::client c(std::move(*s), o, test_logger());
  out.hello = co_await c.hello();
  out.ext = c.ext();
  out.tls = c.tls();
  if (out.hello && !*out.hello) {
    string_source src(body, piece);
    out.sent = co_await c.send(tx, src);
  }
  co_await c.quit();
  CHECK(!c.ready());
  co_return out;
}

smtp::client_options plain_options() {
  smtp::client_options o;
  o.helo_name = "client.test";
  o.tls = smtp::tls_policy::none;
  return o;
}

std::vector<int> codes(std::vector<reply> const& rs) {
  std::vector<int> out;
  for (auto const& r : rs) out.push_back(r.code);
  return out;
}

// ---- scripted servers --------------------------------------------------------------------------

using script_fn = std::function<task<void>(net::stream&, net::line_reader&)>;

/// A peer that accepts one connection on 127.0.0.1 and runs a script on it, then closes.
struct fake_server {
  asio::ip::tcp::acceptor acc;
  asio::ip::tcp::endpoint ep;

  explicit fake_server(asio::io_context& io)
      : acc(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), ep(acc.local_endpoint()) {}

  void run(script_fn script) { asio::co_spawn(acc.get_executor(), serve(&acc, std::move(script)), asio::detached); }

  static task<void> serve(asio::ip::tcp::acceptor* acc, script_fn script) {
    auto [ec, sock] = co_await acc->async_accept(use_tuple);
    if (ec) co_return;
    auto s = std::make_unique<net::tcp_stream>(std::move(sock));
    s->set_timeouts({20s, 20s});
    net::line_reader r(1 << 20);
    co_await script(*s, r);
    s->close();
  }
};

/// The next line from the client, or "<eof>".
task<std::string> line(net::stream& s, net::line_reader& r) {
  auto l = co_await r.read_line(s);
  if (!l) co_return std::string("<eof>");
  co_return std::string(l->text);
}

/// Exactly n bytes from the client (BDAT chunks, DATA bodies are read by line).
task<std::string> bytes(net::stream& s, net::line_reader& r, std::size_t n) {
  std::string out;
  while (out.size() < n) {
    auto in = r.buffered();
    if (in.empty()) {
      if (!co_await r.fill(s)) break;
      continue;
    }
    auto k = std::min(n - out.size(), in.size());
    out.append(in.data(), k);
    r.consume(k);
  }
  co_return out;
}

/// DATA's lines up to the lone ".", joined with "\n" exactly as they came (dot-stuffing kept);
/// `crlf` is cleared if any line ended with a bare LF.
task<std::string> data_lines(net::stream& s, net::line_reader& r, bool& crlf) {
  std::string out;
  crlf = true;
  for (;;) {
    auto l = co_await r.read_line(s);
    if (!l) co_return out + "<eof>";
    if (l->bare_lf) crlf = false;
    if (l->text == ".") co_return out;
    out.append(l->text);
    out += '\n';
  }
}

task<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

// ---- Postfix smtp-sink ---------------------------------------------------------------------------

/// Postfix's smtp-sink (Debian package "postfix") on a free 127.0.0.1 port, dumping each
/// transaction (headers it adds, then the message as received with line ends as LF) into a
/// temporary directory.
class smtp_sink {
 public:
  /// $MAILROOM_SMTP_SINK when set (a non-executable value such as "none" disables the cases),
  /// else smtp-sink on PATH, /usr/sbin, /usr/local/sbin; "" if none.
  static std::string const& binary() {
    static std::string const path = [] {
      namespace fs = std::filesystem;
      if (char const* env = std::getenv("MAILROOM_SMTP_SINK"); env && *env)
        return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
      std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
      dirs += ":/usr/sbin:/usr/local/sbin";
      std::size_t start = 0;
      while (start <= dirs.size()) {
        auto end = dirs.find(':', start);
        if (end == std::string::npos) end = dirs.size();
        auto candidate = fs::path(dirs.substr(start, end - start)) / "smtp-sink";
        if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
        start = end + 1;
      }
      return std::string();
    }();
    return path;
  }
  static bool available() { return !binary().empty(); }

  explicit smtp_sink(std::vector<std::string> flags) {
    // smtp-sink drops privileges when run as root; the dump directory must be writable then.
    ::chmod(dir_.path().c_str(), 0777);
    for (int attempt = 0; attempt < 5; ++attempt)
      if (launch(flags)) return;
    throw std::runtime_error("smtp-sink did not start:\n" + log());
  }
  ~smtp_sink() { stop(); }
  smtp_sink(smtp_sink const&) = delete;
  smtp_sink& operator=(smtp_sink const&) = delete;

  asio::ip::tcp::endpoint endpoint() const { return {asio::ip::make_address("127.0.0.1"), port_}; }

  /// The dump files' contents once `n` non-empty ones exist (waits up to 10 s), in no order.
  std::vector<std::string> dumps(std::size_t n) const {
    std::vector<std::string> out;
    auto const deadline = std::chrono::steady_clock::now() + 10s;
    do {
      out.clear();
      for (auto const& e : std::filesystem::directory_iterator(dir_.path())) {
        if (e.path().filename().string().starts_with("m.") && e.file_size() > 0)
          out.push_back(testing::read_file(e.path().string()));
      }
      if (out.size() >= n) break;
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return out;
  }

  std::string log() const {
    try {
      return testing::read_file(dir_.path() + "/sink.log");
    } catch (...) {
      return {};
    }
  }

 private:
  static std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    ::close(fd);
    return ntohs(sa.sin_port);
  }

  static bool accepts(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return ok;
  }

  bool launch(std::vector<std::string> const& flags) {
    port_ = free_port();
    std::vector<std::string> args = {binary()};
    args.insert(args.end(), flags.begin(), flags.end());
    if (::geteuid() == 0) {
      args.push_back("-u");
      args.push_back("nobody");
    }
    args.push_back("-d");
    args.push_back(dir_.path() + "/m.");
    args.push_back("127.0.0.1:" + std::to_string(port_));
    args.push_back("16");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto const log_path = dir_.path() + "/sink.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error(std::string("cannot run smtp-sink: ") + std::strerror(rc));
    }
    auto const deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: most likely the port was taken
        pid_ = -1;
        return false;
      }
      if (accepts(port_)) return true;
      std::this_thread::sleep_for(20ms);
    }
    stop();
    return false;
  }

  void stop() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  testing::temp_dir dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

inline doctest::skip requires_smtp_sink() { return doctest::skip(!smtp_sink::available()); }

struct smtp_sink_tool {
  static bool available() { return smtp_sink::available(); }
  static char const* missing_message() {
    return "smtp-sink not found: smtp-sink cases skipped (install the Debian package postfix or set MAILROOM_SMTP_SINK)";
  }
};
REGISTER_LISTENER("smtp_sink_skip", 1, testing::tool_skip_listener<smtp_sink_tool>);

}  // namespace

// ==== against mailroom's smtp::server ===============================================================

TEST_CASE("client: EHLO, PIPELINING, per-recipient refusals, one DATA reply") {
  smtp::server_options so;
  so.chunking = false;  // DATA
  fixture f(so);
  auto tx = make_tx("a@x.org", {"b@x.org", "nobody@x.org", "later@x.org", "c@x.org"});
  std::string const body = "Subject: t\r\n\r\nhello\r\n";
  auto out = testing::run(f.io, deliver(f.ep, plain_options(), tx, body));
  CHECK(out.ext.pipelining);
  CHECK(out.ext.size);
  CHECK(out.ext.max_size == 10485760);
  CHECK(out.ext.eightbitmime);
  CHECK(out.ext.smtputf8);
  CHECK(out.ext.dsn);
  CHECK(out.ext.enhancedstatuscodes);
  CHECK(!out.ext.chunking);
  CHECK(!out.ext.starttls);
  CHECK(out.ext.auth.empty());
  CHECK(!out.tls);
  auto const& r = out.tx();
  CHECK(!r.mail);
  CHECK(codes(r.rcpt) == std::vector<int>{250, 550, 450, 250});
  CHECK(r.rcpt[1] == reply(550, {5, 1, 1}, "Mailbox unavailable"));
  CHECK(r.rcpt[2] == reply(450, {4, 2, 1}, "Try later"));
  REQUIRE(r.data.size() == 1);
  CHECK(r.data[0] == reply(250, {2, 0, 0}, "Ok: queued as TEST"));
  CHECK(!r.data_refused);
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].from == "a@x.org");
  CHECK(f.be->messages[0].rcpts == std::vector<std::string>{"b@x.org", "c@x.org"});
  CHECK(f.be->messages[0].body == body);
}

TEST_CASE("client: nothing accepted means no DATA; a refused MAIL fails every recipient") {
  smtp::server_options so;
  so.chunking = false;
  fixture f(so);
  auto tx = make_tx("a@x.org", {"nobody@x.org", "later@x.org"});
  auto out = testing::run(f.io, deliver(f.ep, plain_options(), tx, "x\r\n"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{550, 450});
  CHECK(out.tx().data.empty());
  CHECK(!out.tx().data_refused);
  CHECK(f.be->messages.empty());

  CHECK(f.be->messages.empty());

  // A refused MAIL: the pipelined RCPTs' and DATA's 503s are read, so the next transaction on the
  // same connection is still in step.
  testing::run(f.io, [&]() -> task<void> {
    auto s = co_await net::tcp_stream::connect(f.io.get_executor(), f.ep, 5s);
    REQUIRE(s);
    auto const o = plain_options();
    smtp::client c(std::move(*s), o, test_logger());
    auto h = co_await c.hello();
    REQUIRE((h && !*h));
    auto refused = make_tx("refused@x.org", {"b@x.org", "c@x.org"});
    string_source one("x\r\n");
    auto r1 = co_await c.send(refused, one);
    REQUIRE(r1);
    REQUIRE(r1->mail);
    CHECK(*r1->mail == reply(550, {5, 7, 1}, "Sender refused"));
    CHECK(r1->rcpt.empty());
    CHECK(r1->data.empty());
    CHECK(!r1->data_refused);
    CHECK(c.ready());
    auto fine = make_tx("a@x.org", {"b@x.org"});
    string_source two("y\r\n");
    auto r2 = co_await c.send(fine, two);
    REQUIRE(r2);
    CHECK(!r2->mail);
    CHECK(codes(r2->rcpt) == std::vector<int>{250});
    CHECK(codes(r2->data) == std::vector<int>{250});
    co_await c.quit();
  }());
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].body == "y\r\n");
}

TEST_CASE("client: dot-stuffing and line ends, for DATA and BDAT, across any piece boundary") {
  smtp::server_options so;
  so.bare_newlines = smtp::bare_policy::reject;  // a bare LF reaching the server would fail
  std::string const body = ".starts with a dot\n..two dots\r\n.\n\r\nbare\rCR\r\n.\r\n. \nlast line without end";
  std::string const want = "..starts with a dot\r\n...two dots\r\n..\r\n\r\nbare\r\nCR\r\n..\r\n.. \r\nlast line without end\r\n";
  std::string unstuffed;  // what the server hands its handler: dot-stuffing removed
  for (std::size_t i = 0; i < want.size(); ++i) {
    bool bol = i == 0 || want[i - 1] == '\n';
    if (bol && want[i] == '.') continue;
    unstuffed += want[i];
  }
  for (bool chunking : {false, true}) {
    so.chunking = chunking;
    fixture f(so);
    for (std::size_t piece : {1, 2, 3, 7, 4096}) {
      CAPTURE(chunking);
      CAPTURE(piece);
      auto tx = make_tx("a@x.org", {"b@x.org"});
      auto out = testing::run(f.io, deliver(f.ep, plain_options(), tx, body, piece));
      CHECK(out.ext.chunking == chunking);
      REQUIRE(out.tx().data.size() == 1);
      CHECK(out.tx().data[0].code == 250);
    }
    REQUIRE(f.be->messages.size() == 5);
    for (auto const& m : f.be->messages) CHECK(m.body == unstuffed);
  }
}

TEST_CASE("client: the exact bytes on the wire (scripted server): pipelined group, dot-stuffed CRLF body") {
  asio::io_context io;
  fake_server fs(io);
  std::vector<std::string> seen;
  std::string got_body;
  bool crlf = false;
  fs.run([&](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 fake ESMTP\r\n");
    auto ehlo = co_await line(s, r);
    seen.push_back(ehlo);
    (void)co_await s.write("250-fake\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250 DSN\r\n");
    // No reply until the whole group is in: a client that waited for the MAIL reply would stall.
    for (int i = 0; i < 4; ++i) {
      auto l = co_await line(s, r);
      seen.push_back(l);
    }
    (void)co_await s.write("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 No\r\n354 Go\r\n");
    got_body = co_await data_lines(s, r, crlf);
    (void)co_await s.write("250 2.0.0 Queued\r\n");
    auto q = co_await line(s, r);
    seen.push_back(q);
    (void)co_await s.write("221 2.0.0 Bye\r\n");
  });
  auto tx = make_tx("a@x.org", {"b@x.org", "c@x.org"});
  tx.params.size = 42;
  tx.params.ret = smtp::dsn_ret::headers;
  tx.params.envid = "id+1";
  tx.rcpts[0].second.notify = smtp::notify_success | smtp::notify_failure;
  tx.rcpts[0].second.orcpt_type = "rfc822";
  tx.rcpts[0].second.orcpt = "B@x.org";
  tx.rcpts[1].second.notify = smtp::notify_never;
  tx.eight_bit = true;
  auto out = testing::run(io, deliver(fs.ep, plain_options(), tx, ".a\nb\rc\r\n.\n\xC3\xA9"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{250, 550});
  REQUIRE(out.tx().data.size() == 1);
  CHECK(out.tx().data[0] == reply(250, {2, 0, 0}, "Queued"));
  REQUIRE(seen.size() == 6);
  CHECK(seen[0] == "EHLO client.test");
  CHECK(seen[1] == "MAIL FROM:<a@x.org> SIZE=42 BODY=8BITMIME RET=HDRS ENVID=id+2B1");
  CHECK(seen[2] == "RCPT TO:<b@x.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B@x.org");
  CHECK(seen[3] == "RCPT TO:<c@x.org> NOTIFY=NEVER");
  CHECK(seen[4] == "DATA");
  CHECK(seen[5] == "QUIT");
  CHECK(got_body == "..a\nb\nc\n..\n\xC3\xA9\n");
  CHECK(crlf);
}

TEST_CASE("client: STARTTLS per policy") {
  auto kp = net::tls::generate_self_signed({"mx.test"}).value();
  smtp::server_options so;
  so.tls = net::tls::server_context::create(kp).value();
  fixture f(so);
  auto tx = make_tx("a@x.org", {"b@x.org"});
  auto with = [](smtp::tls_policy p, std::shared_ptr<net::tls::client_context> ctx = {}, std::string name = "mx.test") {
    auto o = plain_options();
    o.tls = p;
    o.tls_context = std::move(ctx);
    o.tls_name = std::move(name);
    return o;
  };
  auto trusting = net::tls::client_context::create_with_trust(net::tls::verify_mode::required, kp.cert_pem).value();

  auto const opportunistic = with(smtp::tls_policy::opportunistic);
  auto out = testing::run(f.io, deliver(f.ep, opportunistic, tx, "x\r\n"));
  CHECK(out.tls);
  CHECK(!out.ext.starttls);  // asked again after TLS: not offered twice
  CHECK(out.tx().data.at(0).code == 250);

  auto const required = with(smtp::tls_policy::required);  // self-signed: not checked, passes
  out = testing::run(f.io, deliver(f.ep, required, tx, "x\r\n"));
  CHECK(out.tls);
  CHECK(out.tx().data.at(0).code == 250);

  auto const verified = with(smtp::tls_policy::verify, trusting);
  out = testing::run(f.io, deliver(f.ep, verified, tx, "x\r\n"));
  CHECK(out.tls);
  CHECK(out.tx().data.at(0).code == 250);

  auto const system_trust = with(smtp::tls_policy::verify);  // the system store does not know it
  out = testing::run(f.io, deliver(f.ep, system_trust, tx, "x\r\n"));
  REQUIRE(!out.hello);
  CHECK(out.hello.error() == net::tls::errc::verify_failed);

  auto const wrong_name = with(smtp::tls_policy::verify, trusting, "other.test");
  out = testing::run(f.io, deliver(f.ep, wrong_name, tx, "x\r\n"));
  REQUIRE(!out.hello);
  CHECK(out.hello.error() == net::tls::errc::verify_failed);

  auto const none = with(smtp::tls_policy::none);
  out = testing::run(f.io, deliver(f.ep, none, tx, "x\r\n"));
  CHECK(!out.tls);
  CHECK(out.ext.starttls);
  CHECK(out.tx().data.at(0).code == 250);

  auto const no_name = with(smtp::tls_policy::verify, trusting, "");
  out = testing::run(f.io, deliver(f.ep, no_name, tx, "x\r\n"));
  REQUIRE(!out.hello);
  CHECK(out.hello.error() == mailroom::errc::invalid_argument);

  REQUIRE(f.be->messages.size() == 4);
  CHECK(f.be->messages[0].tls);
  CHECK(f.be->messages[1].tls);
  CHECK(f.be->messages[2].tls);
  CHECK(!f.be->messages[3].tls);

  // A server without STARTTLS: plaintext under opportunistic, an error under required/verify.
  fixture plain;
  out = testing::run(plain.io, deliver(plain.ep, opportunistic, tx, "x\r\n"));
  CHECK(!out.tls);
  CHECK(out.tx().data.at(0).code == 250);
  out = testing::run(plain.io, deliver(plain.ep, required, tx, "x\r\n"));
  REQUIRE(!out.hello);
  CHECK(out.hello.error() == smtp::errc::starttls_unavailable);
  out = testing::run(plain.io, deliver(plain.ep, verified, tx, "x\r\n"));
  REQUIRE(!out.hello);
  CHECK(out.hello.error() == smtp::errc::starttls_unavailable);
  CHECK(plain.be->messages.size() == 1);
}

TEST_CASE("client: AUTH SCRAM-SHA-256, PLAIN, LOGIN against the server's auth") {
  auto kp = net::tls::generate_self_signed({"mx.test"}).value();
  auto users = std::make_shared<auth::memory_backend>();
  users->add_user("alice", "wonder,land");
  auto tx = make_tx("a@x.org", {"b@x.org"});
  tx.params.auth = "original@x.org";

  auto client_opts = [](std::string password) {
    auto o = plain_options();
    o.tls = smtp::tls_policy::required;
    o.auth = std::pair<std::string, std::string>("alice", std::move(password));
    return o;
  };
  for (std::vector<std::string> mechs : std::vector<std::vector<std::string>>{
           {"SCRAM-SHA-256", "PLAIN", "LOGIN"}, {"SCRAM-SHA-256"}, {"PLAIN"}, {"LOGIN"}, {"LOGIN", "PLAIN"}}) {
    CAPTURE(mechs.front());
    smtp::server_options so;
    so.tls = net::tls::server_context::create(kp).value();
    so.auth = users;
    so.auth_mechanisms = mechs;
    smtp::listener_options lo;
    lo.require_auth = true;
    fixture f(so, lo);
    auto const good = client_opts("wonder,land");
    auto out = testing::run(f.io, deliver(f.ep, good, tx, "x\r\n"));
    CHECK(out.tls);
    CHECK(out.ext.auth == mechs);
    CHECK(out.tx().data.at(0).code == 250);
    REQUIRE(f.be->messages.size() == 1);
    CHECK(f.be->messages[0].user == "alice");
    CHECK(f.be->messages[0].params.auth == "original@x.org");  // passed through once authenticated

    auto const bad = client_opts("wrong");
    out = testing::run(f.io, deliver(f.ep, bad, tx, "x\r\n"));
    REQUIRE(out.hello);
    REQUIRE(*out.hello);
    CHECK((*out.hello)->code == 535);
    CHECK(!out.sent);
  }

  // Credentials never go out in plaintext unless allowed.
  smtp::server_options so;
  so.auth = users;
  smtp::listener_options lan;
  lan.allow_plaintext_auth = true;
  fixture f(so, lan);
  auto o = plain_options();
  o.auth = std::pair<std::string, std::string>("alice", "wonder,land");
  auto out = testing::run(f.io, deliver(f.ep, o, tx, "x\r\n"));
  REQUIRE(!out.hello);
  CHECK(out.hello.error() == smtp::errc::auth_unavailable);
  o.allow_plaintext_auth = true;
  out = testing::run(f.io, deliver(f.ep, o, tx, "x\r\n"));
  CHECK(out.tx().data.at(0).code == 250);
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].user == "alice");

  // A server that offers no mechanism we know.
  smtp::server_options none;
  fixture g(none);
  out = testing::run(g.io, deliver(g.ep, o, tx, "x\r\n"));
  REQUIRE(!out.hello);
  CHECK(out.hello.error() == smtp::errc::auth_unavailable);
}

TEST_CASE("client: CHUNKING sends BDAT chunks that make one message") {
  fixture f;
  std::string body;
  for (int i = 0; body.size() < 400 * 1024; ++i) body += "line " + std::to_string(i) + (i % 3 ? "\n" : "\r\n");
  std::string want;
  for (char c : body) {
    if (c == '\r') continue;
    if (c == '\n') want += '\r';
    want += c;
  }
  auto tx = make_tx("a@x.org", {"b@x.org", "c@x.org"});
  auto out = testing::run(f.io, deliver(f.ep, plain_options(), tx, body, 5000));
  CHECK(out.ext.chunking);
  REQUIRE(out.tx().data.size() == 1);
  CHECK(out.tx().data[0] == reply(250, {2, 0, 0}, "Ok: queued as TEST"));
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].body.size() == want.size());
  CHECK(f.be->messages[0].body == want);
}

TEST_CASE("client: BDAT framing on the wire (scripted server)") {
  asio::io_context io;
  fake_server fs(io);
  std::vector<std::string> cmds;
  std::string chunks;
  fs.run([&](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 fake\r\n");
    (void)co_await line(s, r);
    (void)co_await s.write("250-fake\r\n250-CHUNKING\r\n250 PIPELINING\r\n");
    for (int i = 0; i < 2; ++i) (void)co_await line(s, r);
    (void)co_await s.write("250 ok\r\n250 ok\r\n");
    for (;;) {
      auto l = co_await line(s, r);
      cmds.push_back(l);
      if (!l.starts_with("BDAT ")) break;
      auto n = std::stoul(l.substr(5));
      auto got = co_await bytes(s, r, n);
      chunks += got;
      if (l.ends_with(" LAST")) {
        (void)co_await s.write("250 2.0.0 all of it\r\n");
        break;
      }
      (void)co_await s.write("250 2.0.0 chunk\r\n");
    }
    auto q = co_await line(s, r);
    cmds.push_back(q);
    (void)co_await s.write("221 bye\r\n");
  });
  std::string body(300 * 1024, 'x');
  body[0] = '.';
  body[1000] = '\n';
  body[1001] = '.';
  auto tx = make_tx("a@x.org", {"b@x.org"});
  auto out = testing::run(io, deliver(fs.ep, plain_options(), tx, body, 64 * 1024));
  CHECK(out.tx().data.at(0) == reply(250, {2, 0, 0}, "all of it"));
  REQUIRE(cmds.size() >= 3);
  CHECK(cmds.back() == "QUIT");
  CHECK(cmds[cmds.size() - 2].ends_with(" LAST"));
  std::string want = body;
  want.replace(1000, 1, "\r\n");
  want += "\r\n";
  CHECK(chunks.size() == want.size());
  CHECK(chunks == want);  // no dot-stuffing in BDAT, CRLF line ends
}

TEST_CASE("client: SIZE") {
  smtp::server_options so;
  so.max_message_size = 1000;
  so.chunking = false;
  fixture f(so);
  auto tx = make_tx("a@x.org", {"b@x.org"});
  tx.params.size = 5000;  // declared too big: refused here, nothing sent
  auto out = testing::run(f.io, deliver(f.ep, plain_options(), tx, std::string(5000, 'x')));
  CHECK(out.ext.max_size == 1000);
  REQUIRE(out.tx().mail);
  CHECK(out.tx().mail->code == 552);
  CHECK(out.tx().mail->enhanced == std::array<std::uint8_t, 3>{5, 3, 4});
  CHECK(out.tx().rcpt.empty());
  CHECK(f.be->mails == 0);

  tx.params.size.reset();  // undeclared: the server refuses it after the data
  out = testing::run(f.io, deliver(f.ep, plain_options(), tx, std::string(5000, 'x') + "\r\n"));
  CHECK(!out.tx().mail);
  REQUIRE(out.tx().data.size() == 1);
  CHECK(out.tx().data[0].code == 552);

  tx.params.size = 500;  // declared and within: SIZE= goes to the server
  out = testing::run(f.io, deliver(f.ep, plain_options(), tx, std::string(400, 'x') + "\r\n"));
  CHECK(out.tx().data.at(0).code == 250);
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].params.size == 500u);
}

TEST_CASE("client: 8-bit and UTF-8 mail to a server without 8BITMIME or SMTPUTF8 is refused here") {
  smtp::server_options so;
  so.eight_bit_mime = false;
  so.smtputf8 = false;
  fixture f(so);
  auto tx = make_tx("a@x.org", {"b@x.org"});
  tx.eight_bit = true;
  auto out = testing::run(f.io, deliver(f.ep, plain_options(), tx, "caf\xC3\xA9\r\n"));
  CHECK(!out.ext.eightbitmime);
  REQUIRE(out.tx().mail);
  CHECK(*out.tx().mail == reply(554, {5, 6, 3}, "8-bit message, and the server does not offer 8BITMIME"));

  tx.eight_bit = false;
  tx.params.body = smtp::body_type::eight_bit_mime;
  out = testing::run(f.io, deliver(f.ep, plain_options(), tx, "x\r\n"));
  REQUIRE(out.tx().mail);
  CHECK(out.tx().mail->code == 554);

  tx.params.body = smtp::body_type::unspecified;
  tx.params.smtputf8 = true;
  out = testing::run(f.io, deliver(f.ep, plain_options(), tx, "x\r\n"));
  REQUIRE(out.tx().mail);
  CHECK(out.tx().mail->code == 550);
  CHECK(out.tx().mail->enhanced == std::array<std::uint8_t, 3>{5, 6, 7});

  tx.params.smtputf8 = false;
  auto utf8 = make_tx("a@x.org", {"b@x.org", "j\xC3\xB6rg@x.org"});
  out = testing::run(f.io, deliver(f.ep, plain_options(), utf8, "x\r\n"));
  REQUIRE(out.tx().mail);
  CHECK(out.tx().mail->code == 550);
  CHECK(f.be->mails == 0);

  out = testing::run(f.io, deliver(f.ep, plain_options(), tx, "7-bit\r\n"));  // 7-bit goes through
  CHECK(out.tx().data.at(0).code == 250);
  CHECK(f.be->messages.size() == 1);

  // With the extensions: BODY=8BITMIME and SMTPUTF8 are declared.
  fixture g;
  auto both = make_tx("a@x.org", {"j\xC3\xB6rg@x.org"});
  both.eight_bit = true;
  out = testing::run(g.io, deliver(g.ep, plain_options(), both, "caf\xC3\xA9\r\n"));
  CHECK(out.tx().data.at(0).code == 250);
  REQUIRE(g.be->messages.size() == 1);
  CHECK(g.be->messages[0].params.body == smtp::body_type::eight_bit_mime);
  CHECK(g.be->messages[0].params.smtputf8);
  CHECK(g.be->messages[0].body == "caf\xC3\xA9\r\n");
}

TEST_CASE("client: LMTP gets one reply per accepted recipient, for DATA and BDAT") {
  for (bool chunking : {false, true}) {
    CAPTURE(chunking);
    smtp::server_options so;
    so.chunking = chunking;
    smtp::listener_options lo;
    lo.proto = smtp::protocol::lmtp;
    fixture f(so, lo);
    auto o = plain_options();
    o.lmtp = true;
    auto tx = make_tx("a@x.org", {"u1@x.org", "nobody@x.org", "full@x.org", "u2@x.org"});
    auto out = testing::run(f.io, deliver(f.ep, o, tx, "hi\n"));
    CHECK(codes(out.tx().rcpt) == std::vector<int>{250, 550, 250, 250});
    REQUIRE(out.tx().data.size() == 3);
    CHECK(out.tx().data[0] == reply(250, {2, 0, 0}, "Delivered to u1@x.org"));
    CHECK(out.tx().data[1] == reply(452, {4, 2, 2}, "Mailbox full"));
    CHECK(out.tx().data[2] == reply(250, {2, 0, 0}, "Delivered to u2@x.org"));
    REQUIRE(f.be->messages.size() == 1);
    CHECK(f.be->messages[0].body == "hi\r\n");

    // An SMTP client talking to an LMTP server is refused at EHLO; nothing else happens.
    auto wrong = plain_options();
    out = testing::run(f.io, deliver(f.ep, wrong, tx, "hi\n"));
    REQUIRE(out.hello);
    REQUIRE(*out.hello);
    CHECK((*out.hello)->code == 500);
  }
}

TEST_CASE("client: several transactions on one connection with RSET between; quit ends it") {
  fixture f;
  testing::run(f.io, [&]() -> task<void> {
    auto s = co_await net::tcp_stream::connect(f.io.get_executor(), f.ep, 5s);
    REQUIRE(s);
    auto const o = plain_options();
    smtp::client c(std::move(*s), o, test_logger());
    CHECK(!c.ready());
    auto h = co_await c.hello();
    REQUIRE(h);
    CHECK(!*h);
    CHECK(c.ready());
    for (int i = 0; i < 3; ++i) {
      auto tx = make_tx("a@x.org", {"b@x.org"});
      string_source src("message " + std::to_string(i) + "\r\n");
      auto r = co_await c.send(tx, src);
      REQUIRE(r);
      CHECK(r->data.at(0).code == 250);
      auto z = co_await c.reset();
      CHECK(z);
    }
    auto again = co_await c.hello();
    CHECK(again.error() == mailroom::errc::invalid_argument);
    auto empty = make_tx("a@x.org", {});
    string_source none("");
    auto e = co_await c.send(empty, none);
    CHECK(e.error() == mailroom::errc::invalid_argument);
    co_await c.quit();
    CHECK(!c.ready());
    string_source src("late\r\n");
    auto tx = make_tx("a@x.org", {"b@x.org"});
    auto late = co_await c.send(tx, src);
    CHECK(late.error() == std::errc::not_connected);
    auto z = co_await c.reset();
    CHECK(z.error() == std::errc::not_connected);
    co_await c.quit();  // twice is harmless
  }());
  REQUIRE(f.be->messages.size() == 3);
  CHECK(f.be->messages[2].body == "message 2\r\n");
}

TEST_CASE("client: a failing message source drops the connection without ending the message") {
  for (bool chunking : {false, true}) {
    smtp::server_options so;
    so.chunking = chunking;
    fixture f(so);
    testing::run(f.io, [&]() -> task<void> {
      auto s = co_await net::tcp_stream::connect(f.io.get_executor(), f.ep, 5s);
      REQUIRE(s);
      auto const o = plain_options();
      smtp::client c(std::move(*s), o, test_logger());
      auto h = co_await c.hello();
      REQUIRE((h && !*h));
      string_source src("Subject: half\r\n\r\n" + std::string(200000, 'x') + "\r\n", 1000);
      src.fail_after = 150000;
      src.fail_with = make_error_code(mailroom::errc::io_error);
      auto tx = make_tx("a@x.org", {"b@x.org"});
      auto r = co_await c.send(tx, src);
      REQUIRE(!r);
      CHECK(r.error() == mailroom::errc::io_error);
      CHECK(!c.ready());
      co_await c.quit();
      co_await sleep_for(100ms);  // let the server see the connection go
    }());
    CHECK(f.be->messages.empty());
  }
}

TEST_CASE("client: addresses that cannot be sent are refused here, one by one") {
  smtp::server_options so;
  fixture f(so);
  auto tx = make_tx("a@x.org", {"b@x.org", "c@x.org"});
  tx.rcpts[1].first.domain = "x.org>\r\nRSET";
  auto out = testing::run(f.io, deliver(f.ep, plain_options(), tx, "x\r\n"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{250, 553});
  CHECK(out.tx().data.at(0).code == 250);
  REQUIRE(f.be->messages.size() == 1);
  CHECK(f.be->messages[0].rcpts == std::vector<std::string>{"b@x.org"});

  auto bad_from = make_tx("a@x.org", {"b@x.org"});
  bad_from.from.local = "a\r\nDATA";
  out = testing::run(f.io, deliver(f.ep, plain_options(), bad_from, "x\r\n"));
  REQUIRE(out.tx().mail);
  CHECK(out.tx().mail->code == 553);

  auto null_sender = make_tx("", {"postmaster"});  // bounces: <> to <postmaster>
  out = testing::run(f.io, deliver(f.ep, plain_options(), null_sender, "x\r\n"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{250});
  REQUIRE(f.be->messages.size() == 2);
  CHECK(f.be->messages[1].from == "");
  CHECK(f.be->messages[1].rcpts == std::vector<std::string>{"postmaster"});
}

// ==== hostile and broken servers (scripted) =========================================================

namespace {

/// hello() against a scripted server, with short deadlines.
result<std::optional<reply>> hello_against(script_fn script, std::chrono::seconds timeout = 2s) {
  asio::io_context io;
  fake_server fs(io);
  fs.run(std::move(script));
  auto o = plain_options();
  o.greeting_timeout = o.command_timeout = timeout;
  return testing::run(io, [&]() -> task<result<std::optional<reply>>> {
    auto s = co_await net::tcp_stream::connect(io.get_executor(), fs.ep, 5s);
    REQUIRE(s);
    smtp::client c(std::move(*s), o, test_logger());
    auto h = co_await c.hello();
    co_await c.quit();
    co_return h;
  }());
}

}  // namespace

TEST_CASE("hostile: endless continuation lines end at the line limit") {
  auto const start = std::chrono::steady_clock::now();
  auto h = hello_against([](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 fake\r\n");
    (void)co_await line(s, r);
    for (int i = 0; i < 100000; ++i)
      if (!co_await s.write("250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n")) break;
  });
  REQUIRE(!h);
  CHECK(h.error() == smtp::errc::reply_too_long);
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("hostile: a 100 KB line") {
  auto h = hello_against([](net::stream& s, net::line_reader&) -> task<void> {
    std::string const big = "220 " + std::string(100 * 1024, 'x') + "\r\n";
    (void)co_await s.write(std::string_view(big));
  });
  REQUIRE(!h);
  CHECK(h.error() == smtp::errc::reply_too_long);
}

TEST_CASE("hostile: EOF in the middle of a reply") {
  auto h = hello_against([](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 fake\r\n");
    (void)co_await line(s, r);
    (void)co_await s.write("250-fake\r\n250-PIPE");
  });
  REQUIRE(!h);
  CHECK(h.error() == net::errc::eof);
}

TEST_CASE("hostile: a server that never answers, or trickles a byte at a time, meets the deadline") {
  auto const start = std::chrono::steady_clock::now();
  auto h = hello_against(
      [](net::stream& s, net::line_reader& r) -> task<void> {
        (void)co_await line(s, r);  // waits for the client, which waits for us
      },
      1s);
  REQUIRE(!h);
  CHECK(h.error() == net::errc::timeout);
  auto const silent = std::chrono::steady_clock::now() - start;
  CHECK(silent >= 900ms);
  CHECK(silent < 5s);

  auto const start2 = std::chrono::steady_clock::now();
  h = hello_against(
      [](net::stream& s, net::line_reader&) -> task<void> {
        (void)co_await s.write("220 fake\r\n");
        for (int i = 0; i < 100; ++i) {  // each byte well within the per-read deadline
          co_await sleep_for(200ms);
          if (!co_await s.write("2")) break;
        }
      },
      1s);
  REQUIRE(!h);
  CHECK(h.error() == net::errc::timeout);
  CHECK(std::chrono::steady_clock::now() - start2 < 5s);
}

TEST_CASE("hostile: mixed reply codes, garbage, wrong reply classes") {
  auto mixed = hello_against([](net::stream& s, net::line_reader&) -> task<void> {
    (void)co_await s.write("220-fake\r\n250 other\r\n");
  });
  REQUIRE(!mixed);
  CHECK(mixed.error() == smtp::errc::malformed_reply);

  auto garbage = hello_against([](net::stream& s, net::line_reader&) -> task<void> {
    (void)co_await s.write("HTTP/1.1 400 Bad Request\r\n\r\n");
  });
  REQUIRE(!garbage);
  CHECK(garbage.error() == smtp::errc::malformed_reply);

  auto nul = hello_against([](net::stream& s, net::line_reader&) -> task<void> {
    (void)co_await s.write(std::string_view("\0\0\0\0\r\n", 6));
  });
  REQUIRE(!nul);
  CHECK(nul.error() == smtp::errc::malformed_reply);

  auto wrong_class = hello_against([](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 fake\r\n");
    (void)co_await line(s, r);
    (void)co_await s.write("354 what?\r\n");
  });
  REQUIRE(!wrong_class);
  CHECK(wrong_class.error() == smtp::errc::protocol_error);

  auto refused = hello_against([](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("554-5.7.1 go away\r\n554 5.7.1 really\r\n");
    auto q = co_await line(s, r);
    if (q == "QUIT") (void)co_await s.write("221 bye\r\n");
  });
  REQUIRE(refused);
  REQUIRE(*refused);
  CHECK(**refused == reply(554, {5, 7, 1}, "go away\nreally"));
}

TEST_CASE("hostile: 5xx to EHLO falls back to HELO, with no extensions used") {
  asio::io_context io;
  fake_server fs(io);
  std::vector<std::string> seen;
  std::string got;
  bool crlf = false;
  fs.run([&](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 old\r\n");
    for (auto const* answer : {"502 5.5.2 What is EHLO?\r\n", "250 old\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n"}) {
      auto l = co_await line(s, r);
      seen.push_back(l);
      (void)co_await s.write(answer);
    }
    got = co_await data_lines(s, r, crlf);
    (void)co_await s.write("250 ok\r\n");
    auto q = co_await line(s, r);
    seen.push_back(q);
    (void)co_await s.write("221 bye\r\n");
  });
  auto tx = make_tx("a@x.org", {"b@x.org"});
  tx.params.size = 10;
  tx.params.ret = smtp::dsn_ret::full;
  tx.rcpts[0].second.notify = smtp::notify_failure;
  auto out = testing::run(io, deliver(fs.ep, plain_options(), tx, "one\ntwo"));
  CHECK(!out.ext.pipelining);
  CHECK(out.tx().data.at(0).code == 250);
  CHECK(seen == std::vector<std::string>{"EHLO client.test", "HELO client.test", "MAIL FROM:<a@x.org>",
                                         "RCPT TO:<b@x.org>", "DATA", "QUIT"});
  CHECK(got == "one\ntwo\n");
  CHECK(crlf);

  // After HELO there is no 8BITMIME: an 8-bit message is refused before anything is sent.
  asio::io_context io2;
  fake_server fs2(io2);
  std::vector<std::string> seen2;
  fs2.run([&](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 old\r\n");
    for (auto const* answer : {"500 no\r\n", "250 old\r\n", "221 bye\r\n"}) {
      auto l = co_await line(s, r);
      seen2.push_back(l);
      (void)co_await s.write(answer);
    }
  });
  tx.eight_bit = true;
  out = testing::run(io2, deliver(fs2.ep, plain_options(), tx, "caf\xC3\xA9\n"));
  REQUIRE(out.tx().mail);
  CHECK(out.tx().mail->code == 554);
  CHECK(seen2 == std::vector<std::string>{"EHLO client.test", "HELO client.test", "QUIT"});
}

TEST_CASE("hostile: a SCRAM server that says 235 without proving it knows the password") {
  auto h = [] {
    asio::io_context io;
    fake_server fs(io);
    fs.run([](net::stream& s, net::line_reader& r) -> task<void> {
      (void)co_await s.write("220 fake\r\n");
      (void)co_await line(s, r);
      (void)co_await s.write("250-fake\r\n250 AUTH SCRAM-SHA-256 PLAIN\r\n");
      auto a = co_await line(s, r);
      if (a.starts_with("AUTH SCRAM-SHA-256 ")) (void)co_await s.write("235 2.7.0 sure\r\n");
      (void)co_await line(s, r);
    });
    auto o = plain_options();
    o.auth = std::pair<std::string, std::string>("alice", "secret");
    o.allow_plaintext_auth = true;
    return testing::run(io, [&]() -> task<result<std::optional<reply>>> {
      auto s = co_await net::tcp_stream::connect(io.get_executor(), fs.ep, 5s);
      REQUIRE(s);
      smtp::client c(std::move(*s), o, test_logger());
      auto r = co_await c.hello();
      CHECK(!c.ready());
      co_return r;
    }());
  }();
  REQUIRE(!h);
  CHECK(h.error() == sasl::errc::authentication_failed);
}

TEST_CASE("hostile: replies injected in plaintext after the 220 to STARTTLS are discarded") {
  auto kp = net::tls::generate_self_signed({"mx.test"}).value();
  auto ctx = net::tls::server_context::create(kp).value();
  asio::io_context io;
  asio::ip::tcp::acceptor acc(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<std::string> seen;
  asio::co_spawn(io, [&]() -> task<void> {
    auto [ec, sock] = co_await acc.async_accept(use_tuple);
    if (ec) co_return;
    std::unique_ptr<net::stream> s = std::make_unique<net::tcp_stream>(std::move(sock));
    s->set_timeouts({10s, 10s});
    net::line_reader r(4096);
    (void)co_await s->write("220 fake\r\n");
    (void)co_await line(*s, r);
    (void)co_await s->write("250-fake\r\n250 STARTTLS\r\n");
    auto st = co_await line(*s, r);
    seen.push_back(st);
    (void)co_await s->write("220 go ahead\r\n250-injected\r\n250 SIZE 1\r\n");
    auto t = co_await net::tls::accept(ctx, std::move(s));
    if (!t) co_return;
    auto ehlo = co_await line(**t, r);
    seen.push_back(ehlo);
    (void)co_await (*t)->write("250-fake\r\n250 SIZE 77\r\n");
    auto q = co_await line(**t, r);
    seen.push_back(q);
    (void)co_await (*t)->write("221 bye\r\n");
  }, asio::detached);
  auto tx = make_tx("a@x.org", {"b@x.org"});
  auto o = plain_options();
  o.tls = smtp::tls_policy::required;
  auto ep = acc.local_endpoint();
  outcome out = testing::run(io, [&]() -> task<outcome> {
    outcome res;
    auto s = co_await net::tcp_stream::connect(io.get_executor(), ep, 5s);
    REQUIRE(s);
    smtp::client c(std::move(*s), o, test_logger());
    res.hello = co_await c.hello();
    res.ext = c.ext();
    res.tls = c.tls();
    co_await c.quit();
    co_return res;
  }());
  REQUIRE(out.hello);
  CHECK(!*out.hello);
  CHECK(out.tls);
  CHECK(out.ext.max_size == 77);  // the reply from inside TLS, not the injected one
  CHECK(seen == std::vector<std::string>{"STARTTLS", "EHLO client.test", "QUIT"});
}

TEST_CASE("hostile: an LMTP server that dies after some of its per-recipient replies") {
  asio::io_context io;
  fake_server fs(io);
  fs.run([](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 lmtp\r\n");
    (void)co_await line(s, r);
    (void)co_await s.write("250-lmtp\r\n250 PIPELINING\r\n");
    for (int i = 0; i < 4; ++i) (void)co_await line(s, r);
    (void)co_await s.write("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    bool crlf = false;
    (void)co_await data_lines(s, r, crlf);
    (void)co_await s.write("250 2.0.0 delivered to one\r\n");
  });
  auto o = plain_options();
  o.lmtp = true;
  auto tx = make_tx("a@x.org", {"one@x.org", "two@x.org"});
  auto out = testing::run(io, deliver(fs.ep, o, tx, "x\n"));
  REQUIRE(out.tx().data.size() == 2);
  CHECK(out.tx().data[0].code == 250);
  CHECK(out.tx().data[1].code == 451);  // unknown: retried later, never bounced
}

TEST_CASE("hostile: 421 in the middle of the pipelined group ends the session") {
  asio::io_context io;
  fake_server fs(io);
  fs.run([](net::stream& s, net::line_reader& r) -> task<void> {
    (void)co_await s.write("220 fake\r\n");
    (void)co_await line(s, r);
    (void)co_await s.write("250-fake\r\n250 PIPELINING\r\n");
    for (int i = 0; i < 4; ++i) (void)co_await line(s, r);
    (void)co_await s.write("250 ok\r\n421 4.3.2 shutting down\r\n");
  });
  auto tx = make_tx("a@x.org", {"one@x.org", "two@x.org"});
  auto out = testing::run(io, deliver(fs.ep, plain_options(), tx, "x\n"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{421, 421});
  CHECK(out.tx().data.empty());
}

// ==== Postfix smtp-sink: a real SMTP/LMTP server nobody here wrote ==================================

namespace {

std::string message_part(std::string const& dump) {
  // smtp-sink's own headers end with its three-line Received: header.
  auto at = dump.find("\nReceived: ");
  REQUIRE(at != std::string::npos);
  auto end = dump.find("\n", dump.find("\n\t", dump.find("\n\t", at + 1) + 1) + 1);
  REQUIRE(end != std::string::npos);
  return dump.substr(end + 1);
}

std::string const tricky_body =
    "Subject: sink test\r\n"
    "\r\n"
    ".leading dot\r\n"
    "..two dots\n"
    ".\n"
    "bare\rCR\r\n"
    "caf\xC3\xA9\r\n"
    ".\r\n"
    "no final line end";

// The message as smtp-sink writes it: un-stuffed, line ends as LF, and its blank line at the end.
std::string const tricky_dumped =
    "Subject: sink test\n"
    "\n"
    ".leading dot\n"
    "..two dots\n"
    ".\n"
    "bare\nCR\n"
    "caf\xC3\xA9\n"
    ".\n"
    "no final line end\n"
    "\n";

}  // namespace

TEST_CASE("smtp-sink: PIPELINING and 8BITMIME" * requires_smtp_sink()) {
  smtp_sink sink({});
  asio::io_context io;
  auto tx = make_tx("a@x.org", {"b@y.org", "c@y.org"});
  tx.eight_bit = true;
  tx.rcpts[0].second.notify = smtp::notify_failure | smtp::notify_delay;
  auto const o = plain_options();
  auto out = testing::run(io, deliver(sink.endpoint(), o, tx, tricky_body, 3));
  CHECK(out.ext.pipelining);
  CHECK(out.ext.eightbitmime);
  CHECK(out.ext.dsn);
  CHECK(out.ext.enhancedstatuscodes);
  CHECK(!out.ext.chunking);
  CHECK(codes(out.tx().rcpt) == std::vector<int>{250, 250});
  REQUIRE(out.tx().data.size() == 1);
  CHECK(out.tx().data[0].code == 250);
  auto dumps = sink.dumps(1);
  REQUIRE_MESSAGE(dumps.size() == 1, sink.log());
  CHECK(dumps[0].find("X-Helo-Args: client.test\n") != std::string::npos);
  CHECK(dumps[0].find("X-Mail-Args: <a@x.org> BODY=8BITMIME\n") != std::string::npos);
  CHECK(dumps[0].find("X-Rcpt-Args: <b@y.org> NOTIFY=FAILURE,DELAY\nX-Rcpt-Args: <c@y.org>\n") != std::string::npos);
  CHECK(message_part(dumps[0]) == tricky_dumped);
}

TEST_CASE("smtp-sink: without 8BITMIME an 8-bit message is refused here, a 7-bit one delivered" * requires_smtp_sink()) {
  smtp_sink sink({"-8"});
  asio::io_context io;
  auto const o = plain_options();
  auto tx = make_tx("a@x.org", {"b@y.org"});
  tx.eight_bit = true;
  auto out = testing::run(io, deliver(sink.endpoint(), o, tx, tricky_body));
  CHECK(out.ext.pipelining);
  CHECK(!out.ext.eightbitmime);
  REQUIRE(out.tx().mail);
  CHECK(out.tx().mail->code == 554);
  CHECK(out.tx().mail->enhanced == std::array<std::uint8_t, 3>{5, 6, 3});

  tx.eight_bit = false;
  std::string const seven = "Subject: 7-bit\n\n.dot\n..dots\r\n.\r\nend";
  out = testing::run(io, deliver(sink.endpoint(), o, tx, seven, 1));
  CHECK(out.tx().data.at(0).code == 250);
  auto dumps = sink.dumps(1);
  REQUIRE_MESSAGE(dumps.size() == 1, sink.log());
  CHECK(dumps[0].find("X-Mail-Args: <a@x.org>\n") != std::string::npos);
  CHECK(message_part(dumps[0]) == "Subject: 7-bit\n\n.dot\n..dots\n.\nend\n\n");
}

TEST_CASE("smtp-sink: without PIPELINING, commands go one at a time" * requires_smtp_sink()) {
  smtp_sink sink({"-p"});
  asio::io_context io;
  auto const o = plain_options();
  auto tx = make_tx("a@x.org", {"b@y.org", "c@y.org", "d@y.org"});
  tx.eight_bit = true;
  auto out = testing::run(io, deliver(sink.endpoint(), o, tx, tricky_body, 4096));
  CHECK(!out.ext.pipelining);
  CHECK(codes(out.tx().rcpt) == std::vector<int>{250, 250, 250});
  CHECK(out.tx().data.at(0).code == 250);
  auto dumps = sink.dumps(1);
  REQUIRE_MESSAGE(dumps.size() == 1, sink.log());
  CHECK(message_part(dumps[0]) == tricky_dumped);
}

TEST_CASE("smtp-sink: refusals are replies (RCPT and DATA refused by the server)" * requires_smtp_sink()) {
  smtp_sink rcpt({"-f", "RCPT"});
  asio::io_context io;
  auto const o = plain_options();
  auto tx = make_tx("a@x.org", {"b@y.org", "c@y.org"});
  auto out = testing::run(io, deliver(rcpt.endpoint(), o, tx, "x\n"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{500, 500});
  CHECK(out.tx().data.empty());

  smtp_sink data({"-r", "DATA"});
  out = testing::run(io, deliver(data.endpoint(), o, tx, "x\n"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{250, 250});
  REQUIRE(out.tx().data_refused);
  CHECK(out.tx().data_refused->code == 450);
  CHECK(out.tx().data.empty());
}

TEST_CASE("smtp-sink: LMTP, one reply per recipient" * requires_smtp_sink()) {
  smtp_sink sink({"-L"});
  asio::io_context io;
  auto o = plain_options();
  o.lmtp = true;
  auto tx = make_tx("a@x.org", {"b@y.org", "c@y.org", "d@y.org"});
  auto out = testing::run(io, deliver(sink.endpoint(), o, tx, "Subject: lmtp\n\n.x\n"));
  CHECK(codes(out.tx().rcpt) == std::vector<int>{250, 250, 250});
  CHECK(codes(out.tx().data) == std::vector<int>{250, 250, 250});
  auto dumps = sink.dumps(1);
  REQUIRE_MESSAGE(dumps.size() == 1, sink.log());
  CHECK(dumps[0].find("X-Client-Proto: LMTP\n") != std::string::npos);
  CHECK(message_part(dumps[0]) == "Subject: lmtp\n\n.x\n\n");
}
