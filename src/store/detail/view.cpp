#include "view.hpp"

#include <algorithm>

#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

namespace mailroom::store::detail {

sync_changes replace_view(std::vector<message_info>& view, std::vector<message_info> current, modseq_t seen_modseq) {
  sync_changes out;
  std::size_t j = 0;
  for (std::size_t i = 0; i < current.size(); ++i) {
    auto& m = current[i];
    while (j < view.size() && view[j].uid < m.uid) out.expunged.push_back(view[j++].uid);
    bool known = j < view.size() && view[j].uid == m.uid;
    if (known) {
      m.recent = m.recent || view[j].recent;
      ++j;
    }
    if (!known || m.modseq > seen_modseq) out.changed.push_back(i);
  }
  while (j < view.size()) out.expunged.push_back(view[j++].uid);
  view = std::move(current);
  return out;
}

std::uint64_t change_notifier::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

task<void> change_notifier::wait(std::uint64_t seen, std::chrono::steady_clock::duration max) {
  auto w = std::make_shared<waiter>(co_await asio::this_coro::executor);
  {
    std::lock_guard lock(mutex_);
    if (generation_ != seen) co_return;
    w->timer.expires_after(max);
    waiters_.push_back(w);
  }
  std::error_code ec;
  co_await w->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  std::lock_guard lock(mutex_);
  std::erase(waiters_, w);
}

void change_notifier::notify() {
  std::vector<std::shared_ptr<waiter>> woken;
  {
    std::lock_guard lock(mutex_);
    ++generation_;
    woken.swap(waiters_);
  }
  // On the waiter's own executor; moving the expiry (rather than cancel) also covers a waiter
  // that registered but has not started its async_wait yet.
  for (auto& w : woken)
    asio::post(w->timer.get_executor(), [w] { w->timer.expires_at(asio::steady_timer::time_point::min()); });
}

std::size_t find_uid(std::vector<message_info> const& list, uid_t uid) noexcept {
  auto it = std::lower_bound(list.begin(), list.end(), uid, [](message_info const& m, uid_t u) { return m.uid < u; });
  return it != list.end() && it->uid == uid ? static_cast<std::size_t>(it - list.begin()) : std::size_t(-1);
}

bool apply_flags(flag_set& target, flag_op op, flag_set const& f) {
  flag_set before = target;
  switch (op) {
    case flag_op::add: target.add(f); break;
    case flag_op::remove: target.remove(f); break;
    case flag_op::replace: target = f; break;
  }
  return !(before == target);
}

}  // namespace mailroom::store::detail
