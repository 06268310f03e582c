#include "filter/detail/scan_connection.hpp"

#include <algorithm>

#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "mailroom/net/error.hpp"

namespace mailroom::filter::detail {

namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
using clock = std::chrono::steady_clock;
}  // namespace

// The timer cancels the socket when an operation's deadline passes. Its handler holds a weak
// reference and a generation number, so it never touches a destroyed connection or cancels a
// later operation.
struct scan_connection::state {
  explicit state(executor const& ex) : socket(ex), timer(ex) {}
  asio::generic::stream_protocol::socket socket;
  asio::steady_timer timer;
  clock::time_point end;           // of the whole exchange
  std::chrono::milliseconds io{};  // of each read and write
  bool expired = false;
  std::uint64_t gen = 0;

  static void arm(std::shared_ptr<state> const& self, std::chrono::milliseconds d) {
    self->expired = false;
    self->timer.expires_at(std::min(clock::now() + d, self->end));
    self->timer.async_wait([weak = std::weak_ptr(self), mine = ++self->gen](std::error_code ec) {
      if (ec) return;
      if (auto s = weak.lock(); s && s->gen == mine) {
        s->expired = true;
        std::error_code ignored;
        s->socket.cancel(ignored);
      }
    });
  }
  void disarm() {
    ++gen;
    timer.cancel();
  }
  std::error_code map(std::error_code ec) const {
    if (expired) return make_error_code(net::errc::timeout);
    if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
      return make_error_code(net::errc::eof);
    return ec;
  }
};

scan_connection::scan_connection(std::shared_ptr<state> s) : s_(std::move(s)) {}
scan_connection::scan_connection(scan_connection&&) noexcept = default;
scan_connection& scan_connection::operator=(scan_connection&&) noexcept = default;

scan_connection::~scan_connection() {
  if (!s_) return;
  std::error_code ignored;
  s_->timer.cancel();
  s_->socket.close(ignored);
}

task<result<scan_connection>> scan_connection::open(executor ex, scanner_address const& addr, scan_deadlines d) {
  auto s = std::make_shared<state>(ex);
  s->end = clock::now() + d.total;
  s->io = d.io;
  asio::generic::stream_protocol::endpoint ep;
  if (addr.k == scanner_address::kind::unix_socket)
    ep = asio::local::stream_protocol::endpoint(addr.path);
  else
    ep = addr.endpoint;
  state::arm(s, d.connect);
  auto [ec] = co_await s->socket.async_connect(ep, use_tuple);
  s->disarm();
  if (ec) co_return fail(s->map(ec));
  if (addr.k == scanner_address::kind::tcp) {
    std::error_code ignored;
    s->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
  }
  co_return scan_connection(std::move(s));
}

task<result<std::size_t>> scan_connection::read_some(std::span<char> buf) {
  auto s = s_;
  state::arm(s, s->io);
  auto [ec, n] = co_await s->socket.async_read_some(asio::buffer(buf.data(), buf.size()), use_tuple);
  s->disarm();
  if (ec) co_return fail(s->map(ec));
  co_return n;
}

task<result<void>> scan_connection::write(std::span<char const> data) {
  auto s = s_;
  state::arm(s, s->io);
  auto [ec, n] = co_await asio::async_write(s->socket, asio::buffer(data.data(), data.size()), use_tuple);
  s->disarm();
  if (ec) co_return fail(s->map(ec));
  co_return result<void>{};
}

void scan_connection::shutdown_send() noexcept {
  std::error_code ignored;
  s_->socket.shutdown(asio::socket_base::shutdown_send, ignored);
}

}  // namespace mailroom::filter::detail
