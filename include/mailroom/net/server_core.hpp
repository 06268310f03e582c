// What every TCP protocol server shares: listeners, a connection cap, the registry of live
// sessions and a graceful shutdown. Protocol servers (POP3, IMAP) put their sessions on it.
//
// Contract: the handler runs once per accepted connection on the core's executor; a session
// registers itself (guard) for its lifetime so shutdown() can ask it to stop (idle sessions say
// goodbye at once, busy ones finish their command) and, after the grace period, close it.
// Single-threaded: everything runs on the one executor given.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "mailroom/core/log.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/net/tls/context.hpp"

namespace mailroom::net {

/// A POP3 or IMAP listener: plain (STLS/STARTTLS offered) or implicit TLS (995/993).
struct reader_listener_options {
  asio::ip::tcp::endpoint endpoint;
  bool implicit_tls = false;
  bool allow_plaintext_auth = false;  ///< passwords without TLS (trusted LANs, tests)
  bool reuse_port = false;
};

/// A server-side TLS handshake bounded by `deadline` as a whole (a client trickling bytes cannot
/// stretch it). While it runs, `*lower` names the transport so a shutdown can close it; it is
/// reset before this returns. On failure the transport is gone.
task<result<std::unique_ptr<stream>>> accept_tls(std::shared_ptr<tls::server_context> ctx,
                                                 std::unique_ptr<stream> s, std::chrono::milliseconds deadline,
                                                 stream** lower);

class stoppable {
 public:
  virtual ~stoppable() = default;
  virtual void request_stop() noexcept = 0;  ///< finish the current command, then say goodbye
  virtual void force_close() noexcept = 0;   ///< close the transport now
};

class server_core : public std::enable_shared_from_this<server_core> {
 public:
  using handler = std::function<task<void>(std::unique_ptr<tcp_stream>, asio::ip::tcp::endpoint remote,
                                           asio::ip::tcp::endpoint local)>;

  /// `busy_reply` is written to connections over max_connections before closing them.
  server_core(executor ex, log::logger log, std::size_t max_connections, std::string busy_reply);
  ~server_core();

  executor const& get_executor() const noexcept { return ex_; }
  log::logger const& logger() const noexcept { return log_; }
  bool stopping() const noexcept { return stopping_; }
  std::size_t active_sessions() const noexcept { return sessions_.size(); }

  /// Binds and starts accepting; returns the bound endpoint (port 0 picks one). `mode` is for the
  /// log line ("plain", "implicit-tls", ...).
  result<asio::ip::tcp::endpoint> listen(asio::ip::tcp::endpoint ep, bool reuse_port, handler h,
                                         std::string_view mode = "plain");

  /// Registers a session for as long as the guard lives.
  class guard {
   public:
    guard(std::shared_ptr<server_core> core, stoppable& s);
    ~guard();
    guard(guard const&) = delete;
    guard& operator=(guard const&) = delete;

   private:
    std::shared_ptr<server_core> core_;
    std::list<stoppable*>::iterator it_;
  };

  /// Stops accepting, asks sessions to stop, closes those still open after `grace`; completes
  /// when every session has ended.
  task<void> shutdown(std::chrono::milliseconds grace);
  /// Closes listeners and sessions at once (destruction of the owning server).
  void close_all() noexcept;

 private:
  task<void> accept_loop(asio::ip::tcp::acceptor* acc, handler h);

  executor ex_;
  log::logger log_;
  std::size_t max_connections_;
  std::string busy_reply_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::list<stoppable*> sessions_;
  asio::steady_timer drained_;
  bool stopping_ = false;
};

}  // namespace mailroom::net
