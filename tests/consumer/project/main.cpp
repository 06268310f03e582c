// Receives one message over loopback through the public API and prints its body.
#include <iostream>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "mailroom/net/line_reader.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/smtp/server.hpp"
#include "mailroom/version.hpp"

using namespace mailroom;

struct handler final : smtp::session_handler {
  std::string& out;
  explicit handler(std::string& o) : out(o) {}
  task<smtp::reply> on_data(smtp::message_source& body) override {
    out = (co_await smtp::read_all(body)).value();
    co_return smtp::replies::ok();
  }
};
struct backend final : smtp::backend {
  std::string received;
  task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const&) override {
    co_return std::make_unique<handler>(received);
  }
};

int main() {
  asio::io_context io;
  auto be = std::make_shared<backend>();
  smtp::server srv(io.get_executor(), be, {}, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  auto ep = srv.listen({.endpoint = {asio::ip::make_address("127.0.0.1"), 0}}).value();
  asio::co_spawn(io, [&]() -> task<void> {
    auto s = (co_await net::tcp_stream::connect(io.get_executor(), ep, std::chrono::seconds(5))).value();
    net::line_reader r(4096);
    for (auto const* line : {"", "HELO c\r\n", "MAIL FROM:<a@b.c>\r\n", "RCPT TO:<d@e.f>\r\n", "DATA\r\n",
                             "consumer ok\r\n.\r\n", "QUIT\r\n"}) {
      if (*line) (void)co_await s->write(std::string_view(line));
      (void)co_await r.read_line(*s);
    }
    co_await srv.shutdown(std::chrono::seconds(1));
  }, asio::detached);
  io.run();
  std::cout << "mailroom " << version_string << ": " << be->received;
  return be->received == "consumer ok\r\n" ? 0 : 1;
}
