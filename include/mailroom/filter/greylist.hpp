// Greylisting (in the manner of Postgrey): the first delivery attempt of an unknown (client
// network, envelope sender, recipient) triplet is refused with a temporary error; a retry after
// `delay` and within `retry_window` passes and promotes the triplet, which then passes at once for
// `max_age` after its last use. A client network whose triplets passed auto_whitelist_after times
// skips greylisting for `max_age` after its last pass.
//
// Contract:
// - Triplets: the client address masked to v4_prefix/v6_prefix bits (client_network() of
//   rate_limit.hpp), the sender and the recipient ASCII-lowercased ("" for the null sender).
//   An early retry does not restart the delay. An unpromoted triplet not retried within
//   retry_window of its first attempt starts over.
// - Bounded: at most max_entries triplets and max_clients client networks (the least recently
//   used go first); sender and recipient are cut to 512 octets.
// - Persistence (when `path` is set): every change is appended to the file as one text line and
//   flushed to the kernel (no fsync per line: a machine crash may lose the last lines, which only
//   greylists those triplets again; uses of known triplets are written at most once per hour
//   each). open() loads the file: later lines override earlier ones, malformed lines and a
//   torn last line (no newline) are skipped and counted, expired entries dropped; then the file
//   is rewritten compactly (temporary file, fsync, rename). The file is compacted again when it
//   holds twice as many lines as live entries (and at least compact_min_lines). Write failures
//   do not stop greylisting: they are kept in last_error() and the state lives on in memory.
// - The clock is injectable; times are wall-clock seconds (they survive a restart).
// - Not thread-safe: one greylist belongs to one executor (or strand); check() does small
//   blocking file appends on the caller's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include <asio/ip/address.hpp>

#include "mailroom/core/result.hpp"
#include "mailroom/smtp/reply.hpp"

namespace mailroom::filter {

namespace detail {
template <class V>
class lru_map;
}

class greylist {
 public:
  using clock = std::chrono::system_clock;

  struct options {
    std::chrono::seconds delay{std::chrono::minutes(5)};
    std::chrono::seconds retry_window{std::chrono::hours(24)};
    std::chrono::seconds max_age{std::chrono::hours(24 * 36)};
    unsigned auto_whitelist_after = 5;  ///< passes from one client network; 0 = never whitelist
    unsigned v4_prefix = 24;
    unsigned v6_prefix = 64;
    std::size_t max_entries = 200000;
    std::size_t max_clients = 100000;
    std::string path;                       ///< the state file; empty = memory only
    std::size_t compact_min_lines = 10000;  ///< never compact a shorter file
    std::size_t max_line = 2048;            ///< longer lines in the file are skipped
    std::function<clock::time_point()> now; ///< empty: clock::now
  };

  enum class action { pass, tempfail };
  enum class reason {
    new_triplet,     ///< first attempt: tempfail
    too_early,       ///< retried before `delay`: tempfail
    promoted,        ///< first retry in time: pass, triplet promoted
    known,           ///< a promoted triplet: pass
    whitelisted,     ///< the client network is auto-whitelisted: pass
  };
  struct decision {
    action act = action::pass;
    reason why = reason::known;
    std::chrono::seconds retry_after{0};  ///< tempfail: how long until a retry would pass
    /// tempfail: 451 4.7.1 with the retry hint; pass: 250 2.1.5.
    smtp::reply reply() const;
  };

  /// A greylist with its state loaded from opts.path (when set; a missing file is an empty
  /// state). Errors: the errno of reading or rewriting the file.
  static result<std::unique_ptr<greylist>> open(options opts);
  ~greylist();
  greylist(greylist const&) = delete;
  greylist& operator=(greylist const&) = delete;

  decision check(asio::ip::address const& client, std::string_view sender, std::string_view recipient);

  /// Drops expired entries and rewrites the file from the state in memory.
  std::error_code compact();

  std::size_t size() const noexcept;     ///< triplets
  std::size_t clients() const noexcept;  ///< client networks with passes
  std::size_t skipped_lines() const noexcept { return skipped_; }  ///< malformed lines at load
  std::error_code last_error() const noexcept { return last_error_; }

  struct triplet;
  struct client;

 private:
  explicit greylist(options opts);
  clock::time_point now() const { return opts_.now ? opts_.now() : clock::now(); }
  std::error_code load();
  void load_line(std::string_view line);
  void append(std::string const& line);
  void write_triplet(std::string const& key, triplet const& t);
  void write_client(std::string const& net, client const& c);
  void count_pass(std::string const& net, std::int64_t now_s);
  void drop_expired(std::int64_t now_s);

  options opts_;
  std::unique_ptr<detail::lru_map<triplet>> triplets_;
  std::unique_ptr<detail::lru_map<client>> clients_;
  std::FILE* log_ = nullptr;
  std::size_t lines_ = 0;  // lines in the file
  std::size_t skipped_ = 0;
  std::error_code last_error_;
};

}  // namespace mailroom::filter
