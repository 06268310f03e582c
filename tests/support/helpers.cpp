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

void write_file(std::string const& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string converse(asio::io_context& io, asio::ip::tcp::endpoint ep, std::string script) {
  using namespace std::chrono_literals;
  return run(io, [&]() -> task<std::string> {
    auto s = co_await net::tcp_stream::connect(io.get_executor(), ep, 5s);
    if (!s) throw std::runtime_error("connect: " + s.error().message());
    (*s)->set_timeouts({5s, 5s});
    if (auto w = co_await (*s)->write(std::string_view(script)); !w) throw std::runtime_error("write failed");
    std::error_code ignored;
    (*s)->socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    std::string out;
    char buf[4096];
    for (;;) {
      auto n = co_await (*s)->read_some(buf);
      if (!n || *n == 0) break;
      out.append(buf, *n);
    }
    co_return out;
  }());
}

std::shared_ptr<auth::throttle> fast_throttle() {
  auth::throttle::options o;
  o.base_delay = o.max_delay = std::chrono::milliseconds(1);
  return std::make_shared<auth::throttle>(o);
}

}  // namespace mailroom::testing
