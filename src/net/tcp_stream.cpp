#include "mailroom/net/tcp_stream.hpp"

#include <asio/connect.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "mailroom/net/error.hpp"

#include "mailroom/core/error.hpp"

namespace mailroom::net {

namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::timeout: return "operation timed out";
    case errc::eof: return "connection closed by peer";
    case errc::line_too_long: return "line too long";
  }
  return nullptr;
}

std::error_code map_error(std::error_code ec) {
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
    return make_error_code(errc::eof);
  return ec;
}
}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.net", describe, "unknown net error");
  return instance;
}

// A deadline arms a timer whose expiry cancels the socket; the handler holds a weak reference so a
// stream destroyed while the handler is queued is never touched.
struct tcp_stream::impl {
  explicit impl(asio::ip::tcp::socket s)
      : socket(std::move(s)), read_timer(socket.get_executor()), write_timer(socket.get_executor()) {}
  asio::ip::tcp::socket socket;
  asio::steady_timer read_timer;
  asio::steady_timer write_timer;
  timeouts limits;
  bool read_expired = false;
  bool write_expired = false;
  std::uint64_t read_gen = 0;   // an expiry handler acts only for the operation that armed it
  std::uint64_t write_gen = 0;
};

namespace {
void arm(std::shared_ptr<tcp_stream::impl> const& self, asio::steady_timer& timer, bool& expired,
         std::uint64_t& gen, std::chrono::milliseconds d) {
  expired = false;
  timer.expires_after(d);
  timer.async_wait([weak = std::weak_ptr(self), &expired, &gen, mine = ++gen](std::error_code ec) {
    if (ec) return;
    if (auto s = weak.lock(); s && gen == mine) {
      expired = true;
      std::error_code ignored;
      s->socket.cancel(ignored);
    }
  });
}

void disarm(asio::steady_timer& timer, std::uint64_t& gen) {
  ++gen;  // an expiry already queued is stale now
  timer.cancel();
}
}  // namespace

tcp_stream::tcp_stream(asio::ip::tcp::socket socket) : impl_(std::make_shared<impl>(std::move(socket))) {
  std::error_code ignored;
  impl_->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
}

tcp_stream::~tcp_stream() { close(); }

executor tcp_stream::get_executor() { return impl_->socket.get_executor(); }

asio::ip::tcp::socket& tcp_stream::socket() noexcept { return impl_->socket; }

void tcp_stream::set_timeouts(timeouts t) { impl_->limits = t; }

task<result<std::size_t>> tcp_stream::read_some(std::span<char> buf) {
  auto self = impl_;
  arm(self, self->read_timer, self->read_expired, self->read_gen, self->limits.read);
  auto [ec, n] = co_await self->socket.async_read_some(asio::buffer(buf.data(), buf.size()), use_tuple);
  disarm(self->read_timer, self->read_gen);
  if (ec) {
    if (self->read_expired) co_return fail(errc::timeout);
    co_return fail(map_error(ec));
  }
  co_return n;
}

task<result<void>> tcp_stream::write(std::span<char const> data) {
  auto self = impl_;
  arm(self, self->write_timer, self->write_expired, self->write_gen, self->limits.write);
  auto [ec, n] = co_await asio::async_write(self->socket, asio::buffer(data.data(), data.size()), use_tuple);
  disarm(self->write_timer, self->write_gen);
  if (ec) {
    if (self->write_expired) co_return fail(errc::timeout);
    co_return fail(map_error(ec));
  }
  co_return result<void>{};
}

task<void> tcp_stream::shutdown() {
  std::error_code ignored;
  impl_->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  co_return;
}

void tcp_stream::close() noexcept {
  if (!impl_) return;
  std::error_code ignored;
  impl_->read_timer.cancel();
  impl_->write_timer.cancel();
  impl_->socket.close(ignored);
}

void tcp_stream::cancel() noexcept {
  std::error_code ignored;
  impl_->socket.cancel(ignored);
}

task<result<std::unique_ptr<tcp_stream>>> tcp_stream::connect(executor ex, asio::ip::tcp::endpoint ep,
                                                               std::chrono::milliseconds deadline) {
  auto s = std::make_unique<tcp_stream>(asio::ip::tcp::socket(ex));
  auto self = s->impl_;
  arm(self, self->write_timer, self->write_expired, self->write_gen, deadline);
  auto [ec] = co_await self->socket.async_connect(ep, use_tuple);
  disarm(self->write_timer, self->write_gen);
  if (ec) {
    if (self->write_expired) co_return fail(errc::timeout);
    co_return fail(ec);
  }
  std::error_code ignored;
  self->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
  co_return s;
}

}  // namespace mailroom::net
