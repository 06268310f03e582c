// The queue manager: moves messages from incoming/ into a bounded active window, delivers them
// through a delivery_target, and retries what failed temporarily with a backoff.
//
// Contract: a message leaves the spool only after the target committed it for every recipient
// that was not refused permanently; recipients refused temporarily stay, in a rewritten envelope,
// in deferred/ until their next attempt (the file's mtime). After a crash, recover() puts active/
// back into incoming/, so a message is delivered at least once. Permanently refused recipients
// are logged; until bounces exist (DSN, the outbound issue) a message with any of them is kept in
// hold/ for the postmaster rather than dropped. Messages older than max_age go to hold/ too.
// Any failure of the target to store (a full disk included) is temporary: the message is deferred
// and retried. When even the rewritten envelope cannot be written, the file keeps its old one
// (every original recipient: a retry may repeat a delivery, never skip one).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <asio/steady_timer.hpp>

#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"
#include "mailroom/queue/spool.hpp"

namespace mailroom::queue {

struct manager_options {
  std::size_t active_window = 100;                      ///< messages in delivery at once
  std::chrono::milliseconds scan_interval{std::chrono::seconds(5)};  ///< deferred/ and missed wake-ups
  std::vector<std::chrono::seconds> retry = {std::chrono::minutes(1), std::chrono::minutes(5),
                                             std::chrono::minutes(15), std::chrono::hours(1)};  ///< last repeats
  std::chrono::seconds max_age = std::chrono::hours(24 * 5);
};

class manager : public std::enable_shared_from_this<manager> {
 public:
  manager(executor ex, std::shared_ptr<spool> sp, std::shared_ptr<delivery::delivery_target> target,
          manager_options opts = {}, log::logger logger = {});

  /// Recovers the spool, then delivers until stop(); returns when the last delivery ended.
  task<void> run();
  /// New mail in incoming/: look now rather than at the next scan. Callable from any thread.
  void wake();
  void stop();

  std::uint64_t delivered() const noexcept { return delivered_; }
  std::uint64_t deferred() const noexcept { return deferred_; }
  std::uint64_t held() const noexcept { return held_; }

 private:
  task<void> deliver(std::string id);
  /// The active file with `next` as its envelope; when that cannot be written (a full disk),
  /// the file as it is, so the message is retried rather than stranded in active/.
  task<void> rewrite_or_keep(queued_message const& m, envelope const& next);
  std::chrono::seconds backoff(std::uint32_t attempts) const;

  executor ex_;
  std::shared_ptr<spool> spool_;
  std::shared_ptr<delivery::delivery_target> target_;
  manager_options opts_;
  log::logger log_;
  asio::steady_timer timer_;
  std::set<std::string> in_flight_;
  bool stopping_ = false;
  bool woken_ = false;
  std::uint64_t delivered_ = 0, deferred_ = 0, held_ = 0;
};

}  // namespace mailroom::queue
