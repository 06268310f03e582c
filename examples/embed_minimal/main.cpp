// embed_minimal: the smallest program that receives mail into a callback.
//   embed_minimal 127.0.0.1:2525
#include <iostream>

#include <asio/io_context.hpp>

#include "mailroom/smtp/server.hpp"

using namespace mailroom;

struct printer final : smtp::session_handler {
  task<smtp::reply> on_data(smtp::message_source& body) override {
    auto msg = co_await smtp::read_all(body);  // bounded by server_options::max_message_size
    if (!msg) co_return smtp::replies::local_error();
    std::cout << "--- message of " << msg->size() << " bytes\n" << *msg << std::flush;
    co_return smtp::replies::ok("Printed");  // a real receiver makes the message durable first
  }
};

struct printer_backend final : smtp::backend {
  task<expected<std::unique_ptr<smtp::session_handler>, smtp::reply>> new_session(smtp::session_info const&) override {
    co_return std::make_unique<printer>();
  }
};

int main(int argc, char** argv) {
  std::string where = argc > 1 ? argv[1] : "127.0.0.1:2525";
  auto colon = where.rfind(':');
  asio::io_context io;
  smtp::server server(io.get_executor(), std::make_shared<printer_backend>(), {});
  auto ep = server.listen({.endpoint = {asio::ip::make_address(where.substr(0, colon)),
                                        static_cast<unsigned short>(std::stoi(where.substr(colon + 1)))}});
  if (!ep) return std::cerr << ep.error().message() << "\n", 1;
  io.run();
}
