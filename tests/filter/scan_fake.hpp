// A scripted scanner for the client tests: listens on loopback TCP (or a unix socket), takes
// one connection, reads the request until `complete` says it is whole, then sends `reply`
// piece by piece (a pause between pieces) and closes, or stays silent.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "mailroom/core/task.hpp"
#include "mailroom/filter/scanner.hpp"
#include "support/helpers.hpp"

namespace mailroom::testing {

struct fake_scanner {
  /// True once the request received so far is whole (then the reply is sent).
  std::function<bool(std::string const&)> complete = [](std::string const&) { return true; };
  std::vector<std::string> reply;  ///< sent in these pieces
  std::chrono::milliseconds pause{0};  ///< between pieces
  bool silent = false;                 ///< never reply, never close
  bool close_at_once = false;          ///< close as soon as the request is whole, without a reply

  std::string received;  ///< the whole request as it arrived
  bool done = false;     ///< the exchange ended (reply sent and socket closed)

  explicit fake_scanner(asio::io_context& io, bool unix_socket = false) : io_(io) {
    if (unix_socket) {
      path_ = dir_.path() + "/scanner.sock";
      acceptor_.emplace(io, asio::generic::stream_protocol::endpoint(asio::local::stream_protocol::endpoint(path_)));
    } else {
      acceptor_.emplace(io, asio::generic::stream_protocol::endpoint(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)));
    }
  }

  filter::scanner_address address() const {
    if (!path_.empty()) return filter::scanner_address::unix_socket(path_);
    auto ep = acceptor_->local_endpoint();
    asio::ip::tcp::endpoint tcp;
    std::memcpy(tcp.data(), ep.data(), ep.size());
    tcp.resize(ep.size());
    return filter::scanner_address::tcp(tcp);
  }

  /// Starts serving one connection (call before the client runs).
  void start() { asio::co_spawn(io_, serve(), asio::detached); }

 private:
  task<void> serve() {
    constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
    auto [aec, sock] = co_await acceptor_->async_accept(use_tuple);
    if (aec) co_return;
    char buf[65536];
    bool whole = false;
    while (!whole) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), use_tuple);
      if (ec) break;
      received.append(buf, n);
      whole = complete(received);
    }
    if (silent) {
      // Keep the connection open and unanswered, even after the client's half-close.
      asio::steady_timer forever(io_, std::chrono::hours(1));
      co_await forever.async_wait(use_tuple);
      co_return;
    }
    if (!close_at_once) {
      asio::steady_timer t(io_);
      for (std::size_t i = 0; i < reply.size(); ++i) {
        if (i > 0 && pause.count() > 0) {
          t.expires_after(pause);
          co_await t.async_wait(use_tuple);
        }
        auto [ec, n] = co_await asio::async_write(sock, asio::buffer(reply[i]), use_tuple);
        if (ec) break;
      }
    }
    std::error_code ignored;
    sock.close(ignored);
    done = true;
  }

  asio::io_context& io_;
  temp_dir dir_;
  std::string path_;
  std::optional<asio::basic_socket_acceptor<asio::generic::stream_protocol>> acceptor_;
};

/// A scanner that takes the request and never answers: the read deadline (150 ms) must end the
/// exchange with net::errc::timeout. Scripted: a test's fixture with members f (fake_scanner),
/// o (client options) and scan(message).
template <class Scripted>
std::error_code silent_scan() {
  Scripted s({});
  s.f.silent = true;
  s.o.deadlines = {std::chrono::seconds(1), std::chrono::milliseconds(150), std::chrono::seconds(5)};
  auto v = s.scan("x");
  return v ? std::error_code() : v.error();
}

/// What a sans-I/O reply parser made of some input: the reply, or the error that ended it.
template <class Reply>
struct parsed_reply {
  std::optional<Reply> reply;
  std::error_code error;
};

/// Feeds `in` to p whole or a byte at a time, calling next() after each piece, then ends the
/// stream with finish() unless a reply or an error came first.
template <class Parser>
auto feed_all(Parser& p, std::string_view in, bool bytewise = false) {
  using reply_t = std::remove_cvref_t<decltype(*p.finish())>;
  parsed_reply<reply_t> out;
  auto step = [&](std::string_view piece) {
    p.feed(piece);
    auto r = p.next();
    if (!r) out.error = r.error();
    else if (*r) out.reply = std::move(**r);
    return !out.error && !out.reply;
  };
  if (bytewise) {
    for (char c : in)
      if (!step(std::string_view(&c, 1))) return out;
  } else if (!step(in)) {
    return out;
  }
  auto f = p.finish();
  if (f) out.reply = std::move(*f);
  else out.error = f.error();
  return out;
}

/// True once a request with a header block ("...\r\n\r\n") and, when the header named
/// `length_header` ("Content-length: ") is present, that many octets of body arrived.
inline bool request_complete(std::string const& r, std::string_view length_header) {
  auto end = r.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  auto cl = r.find(length_header);
  if (cl == std::string::npos || cl > end) return true;
  return r.size() - end - 4 >= std::stoul(r.substr(cl + length_header.size()));
}

}  // namespace mailroom::testing
