// smtp_discard: the protocol-only counterpart of Postfix's smtp-sink, for benchmarks only.
// It speaks full SMTP through mailroom's server (limits, pipelining, DATA decoding) and throws
// each message away, replying "250 2.0.0 Ok: discarded". It is not a mail server: nothing is stored.
//   smtp_discard ADDR:PORT [THREADS]
#include <iostream>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>

#include "mailroom/smtp/server.hpp"

using namespace mailroom;

struct discard final : smtp::session_handler {
  task<smtp::reply> on_data(smtp::message_source& body) override {
    for (;;) {
      auto piece = co_await body.read();
      if (!piece || piece->empty()) break;
    }
    co_return smtp::replies::ok("Ok: discarded");
  }
};

struct discard_backend final : smtp::backend {
  task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const&) override {
    co_return std::make_unique<discard>();
  }
};

int main(int argc, char** argv) {
  if (argc < 2) return std::cerr << "usage: smtp_discard ADDR:PORT [THREADS]\n", 2;
  std::string where = argv[1];
  auto colon = where.rfind(':');
  asio::ip::tcp::endpoint ep{asio::ip::make_address(where.substr(0, colon)),
                             static_cast<unsigned short>(std::stoi(where.substr(colon + 1)))};
  unsigned threads = argc > 2 ? static_cast<unsigned>(std::stoul(argv[2])) : 1;
  auto be = std::make_shared<discard_backend>();
  log::logger quiet(std::make_shared<log::stderr_sink>(), log::level::warning);
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<std::unique_ptr<smtp::server>> servers;
  for (unsigned t = 0; t < threads; ++t) {
    ios.push_back(std::make_unique<asio::io_context>(1));
    servers.push_back(std::make_unique<smtp::server>(ios.back()->get_executor(), be, smtp::server_options{}, quiet));
    if (auto r = servers.back()->listen({.endpoint = ep, .reuse_port = threads > 1}); !r)
      return std::cerr << r.error().message() << "\n", 1;
  }
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t) workers.emplace_back([&, t] { ios[t]->run(); });
  ios[0]->run();
  for (auto& w : workers) w.join();
}
