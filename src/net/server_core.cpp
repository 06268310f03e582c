#include "mailroom/net/server_core.hpp"

#include "mailroom/net/error.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

namespace mailroom::net {
namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

task<void> refuse(std::unique_ptr<tcp_stream> s, std::string text) {
  s->set_timeouts({std::chrono::seconds(5), std::chrono::seconds(5)});
  (void)co_await s->write(std::string_view(text));
  co_await s->shutdown();
}
}  // namespace

server_core::server_core(executor ex, log::logger log, std::size_t max_connections, std::string busy_reply)
    : ex_(std::move(ex)), log_(std::move(log)), max_connections_(max_connections), busy_reply_(std::move(busy_reply)),
      drained_(ex_) {}

server_core::~server_core() = default;

server_core::guard::guard(std::shared_ptr<server_core> core, stoppable& s)
    : core_(std::move(core)), it_(core_->sessions_.insert(core_->sessions_.end(), &s)) {}

server_core::guard::~guard() {
  core_->sessions_.erase(it_);
  if (core_->stopping_ && core_->sessions_.empty()) core_->drained_.cancel();
}

result<asio::ip::tcp::endpoint> server_core::listen(asio::ip::tcp::endpoint ep, bool reuse_port, handler h,
                                                    std::string_view mode) {
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(ex_);
  std::error_code ec;
  acc->open(ep.protocol(), ec);
  if (ec) return fail(ec);
  acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (reuse_port) {
    int one = 1;
    if (::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      return fail(std::error_code(errno, std::system_category()));
  }
  acc->bind(ep, ec);
  if (ec) return fail(ec);
  acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec);
  auto bound = acc->local_endpoint(ec);
  if (ec) return fail(ec);
  acceptors_.push_back(std::move(acc));
  asio::co_spawn(ex_, shared_from_this()->accept_loop(acceptors_.back().get(), std::move(h)), asio::detached);
  log_.info("listening", {{"address", bound.address().to_string() + ":" + std::to_string(bound.port())},
                          {"mode", std::string(mode)}});
  return bound;
}

task<void> server_core::accept_loop(asio::ip::tcp::acceptor* acc, handler h) {
  auto self = shared_from_this();  // the core outlives its loops
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(use_tuple);
    if (stopping_ || ec == asio::error::operation_aborted || !acc->is_open()) co_return;
    if (ec) {
      log_.warning("accept failed", {{"error", ec.message()}});
      asio::steady_timer t(ex_, std::chrono::milliseconds(100));  // EMFILE and friends: back off
      co_await t.async_wait(use_tuple);
      continue;
    }
    std::error_code e1, e2;
    auto remote = sock.remote_endpoint(e1);
    auto local = sock.local_endpoint(e2);
    auto stream = std::make_unique<tcp_stream>(std::move(sock));
    if (sessions_.size() >= max_connections_) {
      asio::co_spawn(ex_, refuse(std::move(stream), busy_reply_), asio::detached);
      continue;
    }
    asio::co_spawn(ex_, h(std::move(stream), remote, local), asio::detached);
  }
}

task<result<std::unique_ptr<stream>>> accept_tls(std::shared_ptr<tls::server_context> ctx,
                                                 std::unique_ptr<stream> s, std::chrono::milliseconds deadline,
                                                 stream** lower) {
  *lower = s.get();
  // The expiry may already be queued when the handshake ends: `done` keeps it from closing a
  // connection that succeeded.
  auto done = std::make_shared<bool>(false);
  asio::steady_timer timer(s->get_executor(), deadline);
  auto* transport = s.get();
  timer.async_wait([done, transport](std::error_code ec) {
    if (!ec && !*done) transport->close();
  });
  auto t = co_await tls::accept(std::move(ctx), std::move(s));
  *done = true;
  bool expired = timer.expiry() <= asio::steady_timer::clock_type::now();
  timer.cancel();
  *lower = nullptr;
  if (!t && expired) co_return fail(errc::timeout);
  co_return t;
}

void server_core::close_all() noexcept {
  for (auto& a : acceptors_) {
    std::error_code ignored;
    a->close(ignored);
  }
  for (auto* s : sessions_) s->force_close();
}

task<void> server_core::shutdown(std::chrono::milliseconds grace) {
  auto self = shared_from_this();
  stopping_ = true;
  for (auto& a : acceptors_) {
    std::error_code ignored;
    a->close(ignored);
  }
  for (auto* s : sessions_) s->request_stop();
  if (!sessions_.empty()) {
    drained_.expires_after(grace);
    co_await drained_.async_wait(use_tuple);
  }
  if (!sessions_.empty()) {
    log_.notice("closing sessions still busy after the grace period", {{"sessions", std::to_string(sessions_.size())}});
    for (auto* s : sessions_) s->force_close();
    while (!sessions_.empty()) {
      drained_.expires_after(std::chrono::milliseconds(50));
      co_await drained_.async_wait(use_tuple);
    }
  }
  acceptors_.clear();
}

}  // namespace mailroom::net
