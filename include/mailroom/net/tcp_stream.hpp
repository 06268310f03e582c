// net::stream over a TCP socket, with per-operation deadlines.
#pragma once

#include <memory>

#include <asio/ip/tcp.hpp>

#include "mailroom/net/stream.hpp"

namespace mailroom::net {

class tcp_stream final : public stream {
 public:
  explicit tcp_stream(asio::ip::tcp::socket socket);
  ~tcp_stream() override;

  executor get_executor() override;
  task<result<std::size_t>> read_some(std::span<char> buf) override;
  task<result<void>> write(std::span<char const> data) override;
  using stream::write;
  task<void> shutdown() override;
  void close() noexcept override;
  void cancel() noexcept override;
  void set_timeouts(timeouts t) override;

  asio::ip::tcp::socket& socket() noexcept;

  /// Connects to ep; fails with net::errc::timeout if the deadline passes first.
  static task<result<std::unique_ptr<tcp_stream>>> connect(executor ex, asio::ip::tcp::endpoint ep,
                                                           std::chrono::milliseconds deadline);

  struct impl;  // implementation detail, shared with pending deadline handlers

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace mailroom::net
