// Slow blocking system calls (fsync, rename) run off the I/O threads.
//
// Contract: offload() runs f on the pool and resumes the awaiting coroutine on its own executor
// with f's result. The pool must outlive every offloaded call.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/task.hpp"

namespace mailroom {

class blocking_pool {
 public:
  explicit blocking_pool(std::size_t threads = 8) : pool_(threads) {}
  ~blocking_pool() { pool_.join(); }
  blocking_pool(blocking_pool const&) = delete;
  blocking_pool& operator=(blocking_pool const&) = delete;

  asio::thread_pool::executor_type get_executor() noexcept { return pool_.get_executor(); }

  template <class F>
  task<std::invoke_result_t<F>> offload(F f) {
    using R = std::invoke_result_t<F>;
    // Named rather than a temporary inside co_await: g++ 12 destroys such temporaries twice.
    auto job = [fn = std::move(f)]() mutable -> task<R> { co_return fn(); };
    co_return co_await asio::co_spawn(pool_, std::move(job), asio::use_awaitable);
  }

 private:
  asio::thread_pool pool_;
};

}  // namespace mailroom
