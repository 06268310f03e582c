#include "support/helpers.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <asio/connect.hpp>

namespace mailroom::testing {

void run(asio::io_context& io, task<void> t, std::chrono::seconds limit) {
  bool done = false;
  std::exception_ptr err;
  asio::co_spawn(io, std::move(t), [&](std::exception_ptr e) {
    err = e;
    done = true;
    io.stop();
  });
  io.restart();
  io.run_for(limit);
  if (err) std::rethrow_exception(err);
  if (!done) throw std::runtime_error("test coroutine did not finish in time");
}

std::pair<std::unique_ptr<net::tcp_stream>, std::unique_ptr<net::tcp_stream>> tcp_pair(asio::io_context& io) {
  asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::ip::tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket server = acceptor.accept();
  return {std::make_unique<net::tcp_stream>(std::move(client)), std::make_unique<net::tcp_stream>(std::move(server))};
}

temp_dir::temp_dir() {
  auto base = std::filesystem::temp_directory_path() / "mailroom-test-XXXXXX";
  std::string tmpl = base.string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string read_file(std::string const& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace mailroom::testing
