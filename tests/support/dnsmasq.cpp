#include "support/dnsmasq.hpp"
#include "support/skip_listener.hpp"

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mailroom::testing {

namespace {

using namespace std::chrono_literals;

// A socket descriptor closed on scope exit.
class fd_guard {
 public:
  explicit fd_guard(int fd) : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_guard(fd_guard const&) = delete;
  fd_guard& operator=(fd_guard const&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

// A port free for both UDP and TCP on 127.0.0.1 at the time of the call (dnsmasq needs both).
std::uint16_t free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    fd_guard udp(::socket(AF_INET, SOCK_DGRAM, 0));
    auto sa = loopback(0);
    if (::bind(udp.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) continue;
    socklen_t len = sizeof sa;
    ::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    fd_guard tcp(::socket(AF_INET, SOCK_STREAM, 0));
    if (::bind(tcp.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return ntohs(sa.sin_port);
  }
  throw std::runtime_error("dnsmasq: no free port on 127.0.0.1");
}

// True when something answers a DNS query on 127.0.0.1:port within `wait`; any answer counts,
// even REFUSED.
bool answers(std::uint16_t port, std::chrono::milliseconds wait) {
  // Query id 0x4d52, RD set, one question: ". IN SOA".
  static constexpr std::array<unsigned char, 17> query = {0x4d, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0,
                                                          0,    0,    0,    0,    0, 6, 0, 1};
  fd_guard s(::socket(AF_INET, SOCK_DGRAM, 0));
  auto sa = loopback(port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return false;
  if (::send(s.get(), query.data(), query.size(), 0) != static_cast<ssize_t>(query.size())) return false;
  pollfd p{s.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) != 1) return false;
  std::array<unsigned char, 512> reply{};
  auto n = ::recv(s.get(), reply.data(), reply.size(), 0);
  return n >= 12 && reply[0] == query[0] && reply[1] == query[1];
}

}  // namespace

std::string const& dnsmasq::binary() {
  static std::string const path = [] {
    namespace fs = std::filesystem;
    if (char const* env = std::getenv("MAILROOM_DNSMASQ"); env && *env)
      return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
    std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
    dirs += ":/usr/sbin:/usr/local/sbin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
      auto end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      auto candidate = fs::path(dirs.substr(start, end - start)) / "dnsmasq";
      if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
      start = end + 1;
    }
    return std::string();
  }();
  return path;
}

dnsmasq::dnsmasq(std::vector<std::string> config) {
  if (!available()) throw std::runtime_error("dnsmasq is not installed");
  // Another process may grab the port between free_port() and dnsmasq's bind; try a few.
  for (int attempt = 0; attempt < 5; ++attempt)
    if (launch(config)) return;
  throw std::runtime_error("dnsmasq did not start:\n" + read_file(dir_.path() + "/dnsmasq.log"));
}

dnsmasq::~dnsmasq() { stop(); }

bool dnsmasq::launch(std::vector<std::string> const& config) {
  port_ = free_port();
  std::vector<std::string> args = {binary(),
                                   "--no-daemon",  // foreground, no pid file, no user switch
                                   "--port=" + std::to_string(port_),
                                   "--listen-address=127.0.0.1",
                                   "--bind-interfaces",
                                   "--no-resolv",
                                   "--no-hosts",
                                   "--conf-file=/dev/null",
                                   "--log-facility=-"};
  for (auto const& c : config) args.push_back("--" + c);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  auto log = dir_.path() + "/dnsmasq.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error(std::string("cannot run dnsmasq: ") + std::strerror(rc));
  }

  auto const deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (answers(port_, 100ms)) return true;
    std::this_thread::sleep_for(20ms);
  }
  stop();
  return false;
}

void dnsmasq::stop() noexcept {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

namespace {

struct dnsmasq_tool {
  static bool available() { return dnsmasq::available(); }
  static char const* missing_message() {
    return "dnsmasq not found: DNS cases skipped (install dnsmasq-base or set MAILROOM_DNSMASQ)";
  }
};
REGISTER_LISTENER("dnsmasq_skip", 1, tool_skip_listener<dnsmasq_tool>);

}  // namespace

}  // namespace mailroom::testing
