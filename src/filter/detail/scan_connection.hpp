// One connection to a content scanner over TCP or a unix socket, under scan_deadlines: every
// operation ends by min(its own deadline, the exchange's end). Private to src/filter.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/filter/scanner.hpp"
#include "mailroom/net/error.hpp"

namespace mailroom::filter::detail {

class scan_connection {
 public:
  /// Connects within min(d.connect, d.total); the exchange's end is d.total from now.
  static task<result<scan_connection>> open(executor ex, scanner_address const& addr, scan_deadlines d);

  scan_connection(scan_connection&&) noexcept;
  scan_connection& operator=(scan_connection&&) noexcept;
  ~scan_connection();

  /// At least one byte; net::errc::eof at the end of the stream.
  task<result<std::size_t>> read_some(std::span<char> buf);
  /// All of data.
  task<result<void>> write(std::span<char const> data);
  task<result<void>> write(std::string_view s) { return write(std::span<char const>(s.data(), s.size())); }
  /// Half-close: the scanner sees the end of the request.
  void shutdown_send() noexcept;

  struct state;

 private:
  explicit scan_connection(std::shared_ptr<state> s);
  std::shared_ptr<state> s_;
};

/// Feeds what the scanner sends to a sans-I/O parser until its next() gives a value; at the
/// end of the stream the parser's finish() decides (a reply delimited by the end, or an error).
template <class Parser>
auto read_reply(scan_connection& c, Parser& p) -> task<decltype(p.finish())> {
  std::array<char, 8192> buf;
  for (;;) {
    auto r = p.next();
    if (!r) co_return fail(r.error());
    if (*r) co_return std::move(**r);
    auto n = co_await c.read_some(buf);
    if (!n && n.error() == net::errc::eof) co_return p.finish();
    if (!n) co_return fail(n.error());
    p.feed(std::string_view(buf.data(), *n));
  }
}

}  // namespace mailroom::filter::detail
