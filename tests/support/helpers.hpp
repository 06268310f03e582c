// Small helpers shared by the unit tests.
#pragma once

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "mailroom/auth/throttle.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/net/tcp_stream.hpp"

namespace mailroom::testing {

/// Runs io until the coroutine completes (then stops io, leaving other work such as servers
/// pending for a later run) or until `limit` passes, which throws. Returns the coroutine's value.
template <class T>
T run(asio::io_context& io, task<T> t, std::chrono::seconds limit = std::chrono::seconds(30)) {
  std::optional<T> out;
  std::exception_ptr err;
  asio::co_spawn(io, std::move(t), [&](std::exception_ptr e, T v) {
    err = e;
    if (!e) out.emplace(std::move(v));
    io.stop();
  });
  io.restart();
  io.run_for(limit);
  if (err) std::rethrow_exception(err);
  if (!out) throw std::runtime_error("test coroutine did not finish in time");
  return std::move(*out);
}

void run(asio::io_context& io, task<void> t, std::chrono::seconds limit = std::chrono::seconds(30));

/// A connected pair of loopback TCP streams (client, server).
std::pair<std::unique_ptr<net::tcp_stream>, std::unique_ptr<net::tcp_stream>> tcp_pair(asio::io_context& io);

/// A temporary directory removed (recursively) when the object dies.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(temp_dir const&) = delete;
  temp_dir& operator=(temp_dir const&) = delete;
  std::string const& path() const noexcept { return path_; }

 private:
  std::string path_;
};

/// Reads a whole file; throws if it cannot.
std::string read_file(std::string const& path);
/// Writes a whole file; throws if it cannot.
void write_file(std::string const& path, std::string_view content);

/// Connects to ep, sends `script`, then EOF, and returns everything the server said until it
/// closed (for line protocols: POP3, IMAP).
std::string converse(asio::io_context& io, asio::ip::tcp::endpoint ep, std::string script);

/// An AUTH failure throttle with 1 ms delays (the delay itself is tested in tests/auth).
std::shared_ptr<auth::throttle> fast_throttle();

}  // namespace mailroom::testing
