// smtp_blast: a load generator for benchmarks only. Unlike Postfix's smtp-source it sends a given
// message (a DKIM-signed one for the filter-chain benchmark), through mailroom's own smtp::client.
//   smtp_blast ADDR:PORT MESSAGE_FILE COUNT SESSIONS FROM TO
// Sends the file (LF line ends become CRLF) COUNT times over SESSIONS concurrent connections on one
// thread, one message per transaction, many transactions per connection (no TLS, no AUTH). Prints
// one line: "sent=N ok=N non250=N errors=N seconds=S msg_per_s=R", where the time runs from the
// first connect to the last 250 and msg_per_s counts 250s only. Exit 0 when every message got 250.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/smtp/client.hpp"

using namespace mailroom;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// The whole message in one piece.
class memory_source final : public smtp::message_source {
 public:
  explicit memory_source(std::string const& data) : data_(data) {}
  task<result<std::span<char const>>> read() override {
    std::span<char const> out(data_.data() + pos_, data_.size() - pos_);
    pos_ = data_.size();
    co_return out;
  }
  std::uint64_t size() const noexcept override { return pos_; }

 private:
  std::string const& data_;
  std::size_t pos_ = 0;
};

address split(std::string const& s) {
  auto at = s.rfind('@');
  if (at == std::string::npos) return address{s, {}};
  return address{s.substr(0, at), s.substr(at + 1)};
}

struct run_state {
  asio::ip::tcp::endpoint ep;
  std::string message;
  smtp::outgoing tx;
  std::size_t count = 0;
  std::size_t claimed = 0, ok = 0, non250 = 0, errors = 0;
  clock_type::time_point first_connect{}, last_ok{};
  bool started = false;
};

bool accepted(smtp::transaction_result const& r) {
  return !r.mail && r.data.size() == 1 && r.data.front().code == 250;
}

// One connection after another until every message is claimed; a failed connection is counted
// and replaced (after a pause, so a refusing server does not spin the loop).
task<void> session(run_state& st) {
  auto ex = co_await asio::this_coro::executor;
  smtp::client_options o;
  o.helo_name = "blast.test";
  o.tls = smtp::tls_policy::none;
  while (st.claimed < st.count) {
    if (!st.started) {
      st.started = true;
      st.first_connect = clock_type::now();
    }
    auto s = co_await net::tcp_stream::connect(ex, st.ep, 10s);
    if (!s) {
      ++st.errors;
      std::cerr << "connect: " << s.error().message() << "\n";
      if (st.errors > st.count) co_return;
      continue;
    }
    smtp::client c(std::move(*s), o);
    auto hello = co_await c.hello();
    if (!hello || *hello) {
      ++st.errors;
      std::cerr << "hello: " << (hello ? (*hello)->text : hello.error().message()) << "\n";
      co_await c.quit();
      if (st.errors > st.count) co_return;
      continue;
    }
    while (c.ready() && st.claimed < st.count) {
      ++st.claimed;
      memory_source src(st.message);
      auto r = co_await c.send(st.tx, src);
      if (!r) {
        ++st.errors;
        std::cerr << "send: " << r.error().message() << "\n";
        break;  // the message's fate is unknown; it is not retried
      }
      if (accepted(*r)) {
        ++st.ok;
        st.last_ok = clock_type::now();
        continue;
      }
      ++st.non250;
      if (st.non250 <= 5) {
        auto const& rep = r->mail ? *r->mail
                          : r->data_refused ? *r->data_refused
                          : !r->data.empty() ? r->data.front()
                          : !r->rcpt.empty() ? r->rcpt.front()
                                             : smtp::reply(0, "no reply");
        std::cerr << "refused: " << rep.code << " " << rep.text << "\n";
      }
      if (r->mail || r->data.empty()) {
        if (auto rs = co_await c.reset(); !rs) break;
      }
    }
    co_await c.quit();
  }
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 7) return std::cerr << "usage: smtp_blast ADDR:PORT MESSAGE_FILE COUNT SESSIONS FROM TO\n", 2;
  run_state st;
  std::string where = argv[1];
  auto colon = where.rfind(':');
  st.ep = {asio::ip::make_address(where.substr(0, colon)), static_cast<unsigned short>(std::stoi(where.substr(colon + 1)))};
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) return std::cerr << "cannot read " << argv[2] << "\n", 1;
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) st.message += '\r';
    st.message += raw[i];
  }
  st.count = std::stoul(argv[3]);
  auto sessions = std::stoul(argv[4]);
  st.tx.from = split(argv[5]);
  st.tx.rcpts.emplace_back(split(argv[6]), smtp::rcpt_params{});
  st.tx.params.size = st.message.size();

  asio::io_context io(1);
  for (unsigned long i = 0; i < sessions; ++i)
    asio::co_spawn(io, session(st), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  io.run();
  double secs = std::chrono::duration<double>(st.last_ok - st.first_connect).count();
  std::printf("sent=%zu ok=%zu non250=%zu errors=%zu seconds=%.3f msg_per_s=%.1f\n", st.claimed, st.ok, st.non250,
              st.errors, secs, st.ok > 0 && secs > 0 ? static_cast<double>(st.ok) / secs : 0.0);
  return st.ok == st.count ? 0 : 1;
} catch (std::exception const& e) {
  std::cerr << "smtp_blast: " << e.what() << "\n";
  return 1;
}
