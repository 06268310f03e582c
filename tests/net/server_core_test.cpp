#include <doctest/doctest.h>

#include <chrono>

#include <asio/io_context.hpp>

#include "mailroom/net/error.hpp"
#include "mailroom/net/server_core.hpp"
#include "support/helpers.hpp"

using namespace mailroom;
using namespace std::chrono_literals;

TEST_CASE("accept_tls: a client that never speaks is cut off at the deadline, and the transport is released") {
  asio::io_context io;
  auto kp = net::tls::generate_self_signed({"localhost"}).value();
  auto ctx = net::tls::server_context::create(kp).value();
  auto pair = testing::tcp_pair(io);  // not a structured binding: clang 14 cannot capture those
  auto& server = pair.second;
  net::stream* lower = nullptr;
  auto start = std::chrono::steady_clock::now();
  auto r = testing::run(io, [&]() -> task<result<std::unique_ptr<net::stream>>> {
    std::unique_ptr<net::stream> s = std::move(server);
    co_return co_await net::accept_tls(ctx, std::move(s), 200ms, &lower);
  }());
  REQUIRE(!r);
  CHECK(r.error() == net::errc::timeout);
  CHECK(lower == nullptr);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 150ms);
  CHECK(took < 5s);
}
