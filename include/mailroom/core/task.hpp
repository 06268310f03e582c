// Coroutine vocabulary: every asynchronous operation in mailroom is an Asio awaitable.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

namespace mailroom {

/// An asynchronous operation producing T, run with co_await on an Asio executor.
template <class T = void>
using task = asio::awaitable<T>;

using executor = asio::any_io_executor;

}  // namespace mailroom
