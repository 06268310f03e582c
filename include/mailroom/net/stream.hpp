// The byte-stream interface every protocol session runs on.
//
// Contract: one read and one write may be outstanding at a time, from the stream's executor.
// Each operation has a deadline (set_timeouts); when it passes the operation fails with
// net::errc::timeout and the stream should be closed. End of stream is net::errc::eof.
// Layers stack: a tls::stream wraps another stream (STARTTLS swaps the session's stream for a
// TLS stream over the old one), and test::duplex_stream stands in for a socket in tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>

#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"

namespace mailroom::net {

struct timeouts {
  std::chrono::milliseconds read{std::chrono::seconds(300)};
  std::chrono::milliseconds write{std::chrono::seconds(300)};
};

/// What a session may want to know about the transport (logged and shown in Received: headers).
struct tls_details {
  std::string version;      ///< "TLSv1.2"
  std::string cipher;       ///< cipher suite name
  std::string server_name;  ///< SNI sent by the client, if any
};

class stream {
 public:
  virtual ~stream() = default;

  virtual executor get_executor() = 0;

  /// Reads at least one byte into buf (buf must not be empty).
  virtual task<result<std::size_t>> read_some(std::span<char> buf) = 0;

  /// Writes all of data.
  virtual task<result<void>> write(std::span<char const> data) = 0;

  /// Orderly close of the sending side (TLS close_notify, TCP FIN). Errors are not interesting.
  virtual task<void> shutdown() = 0;

  /// Closes at once; pending operations complete with an error.
  virtual void close() noexcept = 0;

  /// Makes pending operations complete early with asio::error::operation_aborted; the stream
  /// stays usable (a server uses this to wake idle sessions at shutdown and greet them with 421).
  virtual void cancel() noexcept = 0;

  /// Deadlines for each following read and write operation.
  virtual void set_timeouts(timeouts t) = 0;

  /// Non-null once a TLS layer is established on this stream.
  virtual tls_details const* tls() const noexcept { return nullptr; }

  /// Convenience overloads for text.
  task<result<void>> write(std::string_view s) { return write(std::span<char const>(s.data(), s.size())); }
  task<result<void>> write(std::string const& s) { return write(std::string_view(s)); }
  task<result<void>> write(char const* s) { return write(std::string_view(s)); }
};

}  // namespace mailroom::net
