// The queue manager: moves messages from incoming/ into a bounded active window, delivers them
// through a delivery_target, retries what failed temporarily with a backoff, and tells senders
// about failures and long delays with DSNs (RFC 3464) queued in the same spool.
//
// Contract:
// - One delivery per distinct delivery_target::group_key() of the recipients (e.g. one SMTP
//   transaction per destination domain), each reading the body afresh from the queue file;
//   recipients of different groups succeed or fail independently.
// - Per recipient: accepted and committed = done; refused with 4xx, or a failed body()/commit()
//   without a 5xx failure_reply() (no reply, a 4xx, a full disk) = retried later; refused with 5xx
//   at RCPT, or a 5xx failure_reply() after body()/commit() for the group's accepted recipients =
//   failed. A message whose header has more than max_hops Received: fields fails at once for
//   every recipient (5.4.6, routing loop). Recipients still pending once the message is max_age
//   old fail with 4.4.7 (delivery time expired).
// - Failed recipients get one DSN per attempt, listing all of them (Action: failed), to the
//   original sender, queued in the spool with the null sender <> before the original's file is
//   changed (a crash in between may repeat a DSN, never lose one). No DSN when the sender is
//   null (never bounce a bounce; logged) or the recipient's NOTIFY excludes FAILURE.
// - Delay warning, once per message (remembered in the envelope): when a message is still
//   pending delay_warning after its arrival, one DSN (Action: delayed, Will-Retry-Until the
//   expiry) for the pending recipients with NOTIFY=DELAY, or with no NOTIFY at all. With
//   delay_warning = 0 recipients without NOTIFY are never warned, and NOTIFY=DELAY ones are warned
//   after default_delay_warning. It shares the attempt's DSN with failures when there are any.
// - When a DSN cannot be queued (a full disk), the message goes to hold/ with its pending
//   recipients and those it could not report, logged as an error: nothing is lost, the
//   postmaster releases it (mailroomctl queue release), and then they are tried and reported again.
//   A delay warning that cannot be queued is only logged, and tried at the next attempt.
// - Recipients left pending stay, with their last reply or error and the time of the attempt,
//   in a rewritten envelope in deferred/ until their next attempt (the file's mtime): the
//   retry_initial * retry_factor^(attempts - 1) after this attempt, at most retry_max, and never
//   after the expiry. When even the rewritten envelope cannot be written, the file keeps its old
//   one (every original recipient: a retry may repeat a delivery, never skip one).
// - After a crash, recover() puts active/ back into incoming/, so a message is delivered at
//   least once. hold/ is for administrative holds and for undeliverable DSNs as above.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <asio/steady_timer.hpp>

#include "mailroom/core/log.hpp"
#include "mailroom/delivery/target.hpp"
#include "mailroom/mta/dsn.hpp"
#include "mailroom/queue/spool.hpp"

namespace mailroom::queue {

/// When NOTIFY=DELAY recipients are warned if manager_options::delay_warning is 0.
inline constexpr std::chrono::seconds default_delay_warning = std::chrono::hours(4);

struct manager_options {
  std::size_t active_window = 100;                      ///< messages in delivery at once
  std::chrono::milliseconds scan_interval{std::chrono::seconds(5)};  ///< deferred/ and missed wake-ups
  std::chrono::seconds retry_initial = std::chrono::minutes(5);  ///< wait after the first failed attempt
  double retry_factor = 2.0;                                    ///< each further wait this much longer
  std::chrono::seconds retry_max = std::chrono::hours(4);       ///< no wait longer than this
  std::chrono::seconds max_age = std::chrono::hours(24 * 5);    ///< then pending recipients fail (4.4.7)
  std::chrono::seconds delay_warning = std::chrono::hours(4);   ///< see the contract; 0 = NOTIFY=DELAY only
  std::size_t max_hops = 50;                   ///< more Received: fields than this = a routing loop
  std::string hostname = "localhost";          ///< Reporting-MTA and MAILER-DAEMON@ of the DSNs
  std::size_t dsn_max_returned = 100 * 1024;   ///< a larger original comes back as its header only
  /// The time (tests move it); empty = the system clock. Ages, retry times and dates in DSNs.
  std::function<std::chrono::system_clock::time_point()> clock;
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

  std::uint64_t delivered() const noexcept { return delivered_; }  ///< committed deliveries (groups)
  std::uint64_t deferred() const noexcept { return deferred_; }    ///< messages moved to deferred/
  std::uint64_t held() const noexcept { return held_; }            ///< messages moved to hold/
  std::uint64_t failed() const noexcept { return failed_; }        ///< recipients given up on
  std::uint64_t dsns() const noexcept { return dsns_; }            ///< DSNs queued (failures and delays)

  /// The wait before the next attempt after `attempts` attempts (1 = after the first).
  std::chrono::seconds backoff(std::uint32_t attempts) const;

 private:
  enum class outcome : std::uint8_t { done, retry, failed };

  task<void> deliver(std::string id);
  /// One group's delivery: updates the state and outcome of the recipients at `idx`.
  task<void> deliver_group(queued_message const& m, std::vector<std::size_t> const& idx,
                           std::vector<recipient>& state, std::vector<outcome>& out);
  /// Queues a DSN about `m` for `rcpts`; returns its queue id.
  task<result<std::string>> queue_dsn(queued_message const& m, std::vector<mta::dsn_recipient> const& rcpts);
  /// The active file with `next` as its envelope; when that cannot be written (a full disk),
  /// the file as it is, so the message is retried rather than stranded in active/.
  task<void> rewrite_or_keep(queued_message const& m, envelope const& next);
  std::chrono::system_clock::time_point now() const;

  executor ex_;
  std::shared_ptr<spool> spool_;
  std::shared_ptr<delivery::delivery_target> target_;
  manager_options opts_;
  log::logger log_;
  asio::steady_timer timer_;
  std::set<std::string> in_flight_;
  bool stopping_ = false;
  bool woken_ = false;
  std::uint64_t delivered_ = 0, deferred_ = 0, held_ = 0, failed_ = 0, dsns_ = 0;
};

}  // namespace mailroom::queue
