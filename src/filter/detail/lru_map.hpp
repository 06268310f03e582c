// A string-keyed map with a size cap: using an entry makes it the newest, inserting past the cap
// drops the oldest. Shared by the rate limiter and the greylist; not thread-safe.
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>

namespace mailroom::filter::detail {

template <class V>
class lru_map {
 public:
  explicit lru_map(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  /// The value for key without changing its age; nullptr when absent.
  V* find(std::string const& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->second;
  }
  V const* find(std::string const& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &it->second->second;
  }
  /// The value for key made newest; nullptr when absent.
  V* touch(std::string const& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    items_.splice(items_.begin(), items_, it->second);
    return &it->second->second;
  }
  /// The value for key made newest, default-constructed (and the oldest dropped past the cap)
  /// when absent.
  V& upsert(std::string const& key) {
    if (V* v = touch(key)) return *v;
    items_.emplace_front(key, V{});
    index_.emplace(key, items_.begin());
    while (items_.size() > capacity_) {
      index_.erase(items_.back().first);
      items_.pop_back();
    }
    return items_.front().second;
  }
  void erase(std::string const& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    items_.erase(it->second);
    index_.erase(it);
  }
  /// Erases every entry for which pred(key, value) is true.
  template <class Pred>
  void erase_if(Pred pred) {
    for (auto it = items_.begin(); it != items_.end();) {
      if (pred(it->first, it->second)) {
        index_.erase(it->first);
        it = items_.erase(it);
      } else {
        ++it;
      }
    }
  }
  /// Calls f(key, value) from the oldest entry to the newest.
  template <class F>
  void for_each_oldest_first(F f) const {
    for (auto it = items_.rbegin(); it != items_.rend(); ++it) f(it->first, it->second);
  }
  std::size_t size() const noexcept { return items_.size(); }
  void clear() noexcept {
    items_.clear();
    index_.clear();
  }

 private:
  std::size_t capacity_;
  std::list<std::pair<std::string, V>> items_;  // newest first
  std::unordered_map<std::string, typename std::list<std::pair<std::string, V>>::iterator> index_;
};

}  // namespace mailroom::filter::detail
