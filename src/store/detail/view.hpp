// Helpers shared by the store backends (private to src/store).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <asio/steady_timer.hpp>

#include "mailroom/core/task.hpp"
#include "mailroom/store/store.hpp"

namespace mailroom::store::detail {

/// Replaces a view's message list by `current` (both in ascending UID order) and reports what a
/// session must announce: UIDs that are gone, and indexes (into the new list) of messages that
/// are new to the view or whose modseq is above `seen_modseq`. Keeps the view's \Recent marks.
sync_changes replace_view(std::vector<message_info>& view, std::vector<message_info> current, modseq_t seen_modseq);

/// Wakes waiters when a mailbox changes. Thread-safe; each waiter is woken on its own executor.
class change_notifier {
 public:
  std::uint64_t generation() const;
  /// Completes once the generation differs from `seen`, or after `max`.
  task<void> wait(std::uint64_t seen, std::chrono::steady_clock::duration max);
  void notify();

 private:
  struct waiter {
    explicit waiter(executor ex) : timer(ex) {}
    asio::steady_timer timer;
  };
  mutable std::mutex mutex_;
  std::uint64_t generation_ = 0;
  std::vector<std::shared_ptr<waiter>> waiters_;
};

/// Index of `uid` in an ascending list, or npos.
std::size_t find_uid(std::vector<message_info> const& list, uid_t uid) noexcept;

/// Applies a flag operation; true when the flags changed.
bool apply_flags(flag_set& target, flag_op op, flag_set const& f);

}  // namespace mailroom::store::detail
