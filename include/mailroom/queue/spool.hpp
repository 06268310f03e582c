// The MTA spool: one file per message, envelope and body together, in state directories
// (incoming, active, deferred, hold, corrupt) like Postfix's queue.
//
// Contract: commit() of a spool delivery returns only when the file and its directory entry in
// incoming/ are on stable storage (fdatasync, rename from tmp/, group-committed fsync of
// incoming/), so a 250 after it never loses mail. A file in a state directory is always complete;
// a crash leaves at most a partial file in tmp/, removed by recover(). Every field of the
// envelope is length-prefixed, so CR, LF or NUL in any value cannot forge another field.
// A file that does not parse is moved to corrupt/ (and logged), never retried in a loop.
//
// Out of space: start() fails with std::errc::no_space_on_device when the file system has less
// free space than the declared SIZE (RFC 1870) plus min_free_space; a write that fails later
// (ENOSPC, EDQUOT or any other error) fails body() and leaves nothing behind. mta::inbound turns
// ENOSPC/EDQUOT into 452 4.3.1 and other failures into 451 4.3.0, never 250.
//
// File layout: "MAILROOM-QUEUE 1\n", records "<tag> <length>:<bytes>\n", "E 0:\n", the body,
// then the footer "\nMAILROOM-QUEUE-END <20-digit body length>\n".
//
// Records: I id, T arrival, F sender, P a MAIL parameter, C client, H helo, X protocol, A auth
// user, K attempts; per recipient R address, then N notify flags, O "type;orcpt". Delivery state
// records use lower-case tags, and a reader skips lower-case tags it does not know (so a later
// version may add state without making older files, or older readers of newer files, fail):
// w (message) unix time the delay warning was queued; after an R: a unix time of the last
// attempt, r last reply "ddd x.y.z text" (0.0.0 = no enhanced code; '\n' between lines),
// e last error text when there was no reply. Upper-case tags are required to be known.
// Files written before the lower-case records existed read as before (no state yet); a reader
// older than them does not know the lower-case rule and moves files with such records to
// corrupt/ (downgrading needs an empty queue).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/blocking.hpp"
#include "mailroom/core/durable.hpp"
#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"

namespace mailroom::queue {

enum class state : std::uint8_t { incoming, active, deferred, hold, corrupt };
std::string_view to_string(state s) noexcept;

struct recipient {
  recipient() = default;
  recipient(address a, smtp::rcpt_params p = {}) : addr(std::move(a)), params(std::move(p)) {}

  address addr;
  smtp::rcpt_params params;
  // Delivery state while the recipient is pending (empty before the first attempt).
  std::int64_t last_attempt = 0;          ///< unix time, seconds; 0 = not tried yet
  std::optional<smtp::reply> last_reply;  ///< what the peer answered last time
  std::string last_error;                 ///< why it failed when there was no reply

  /// The last outcome on one line for people: the reply, else the error; "" before any attempt.
  std::string last_outcome() const;
};

/// Longest reply or error text kept per recipient (longer ones are cut when written; a message
/// with over a thousand recipients keeps less each, at least 128 octets, so that its envelope
/// stays within what read() accepts).
inline constexpr std::size_t max_state_text = 4096;

struct envelope {
  std::string id;
  std::int64_t arrival = 0;  ///< unix time, seconds
  address sender;            ///< null for bounces
  smtp::mail_params params;
  std::vector<recipient> recipients;
  std::string client;        ///< "ip:port"
  std::string helo;
  std::string protocol;
  std::string auth_user;
  std::uint32_t attempts = 0;  ///< delivery attempts so far
  std::int64_t delay_warned = 0;  ///< unix time the delay DSN was queued; 0 = not yet
};

/// A queued message as read back: its envelope and where its body lies in the file.
struct queued_message {
  envelope env;
  std::string path;
  std::uint64_t body_offset = 0;
  std::uint64_t body_size = 0;
};

/// Limits when reading queue files back (a damaged file must not make us allocate without bound).
inline constexpr std::size_t max_record = 64 * 1024;
inline constexpr std::size_t max_recipients = 100000;
/// Room for the envelope and the Received: line that start() wants beyond the declared SIZE.
inline constexpr std::uint64_t min_free_space = 16 * 1024;

class spool final : public delivery::delivery_target, public std::enable_shared_from_this<spool> {
 public:
  /// Creates root and its state directories if missing.
  static result<std::shared_ptr<spool>> open(std::string root, blocking_pool& pool, log::logger logger = {});

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const& ctx,
                                                          address const& from) override;

  /// Queue ids in a state, oldest first (ids sort by arrival).
  result<std::vector<std::string>> list(state s) const;
  /// Reads a message's envelope; a file that does not parse goes to corrupt/ and the result is
  /// errc::invalid_argument.
  result<queued_message> read(state s, std::string const& id);
  /// The body bytes of a message (for tests and small tools; delivery streams from the file).
  result<std::string> read_body(queued_message const& m) const;
  /// Moves a message between states, durably (fsync of the target directory).
  task<result<void>> move(std::string const& id, state from, state to);
  /// Replaces a message's envelope (fewer recipients, more attempts), keeping its body; durable.
  task<result<void>> rewrite(state s, queued_message const& m, envelope const& env);
  /// When a deferred message is due again: the file's mtime (set by defer_until).
  task<result<void>> defer_until(std::string const& id, std::chrono::system_clock::time_point when);
  /// Deferred messages whose time has come.
  result<std::vector<std::string>> due(std::chrono::system_clock::time_point now) const;
  /// Called (on the committing coroutine's executor) after each message reaches incoming/.
  void on_queued(std::function<void()> f) { on_queued_ = std::move(f); }
  void notify_queued() const {
    if (on_queued_) on_queued_();
  }

  /// Start-up: active/ goes back to incoming/ (a crash interrupted those deliveries) and partial
  /// files in tmp/ are removed. Returns how many messages went back.
  task<result<std::size_t>> recover();

  std::string path(state s, std::string const& id) const;
  std::string const& root() const noexcept { return root_; }

  spool(std::string root, blocking_pool& pool, log::logger logger);

  // For the spool's own deliveries.
  std::string new_id();
  blocking_pool& pool() noexcept { return pool_; }
  directory_sync& incoming_sync() noexcept { return incoming_sync_; }
  log::logger const& logger() const noexcept { return log_; }

 private:
  std::string root_;
  blocking_pool& pool_;
  log::logger log_;
  directory_sync incoming_sync_;
  std::function<void()> on_queued_;
};

/// The envelope in the file's record format (header only, up to and including "E 0:\n").
std::string encode_envelope(envelope const& env);
/// Parses a header produced by encode_envelope; `consumed` is its length.
result<envelope> decode_envelope(std::string_view data, std::size_t* consumed);

}  // namespace mailroom::queue
