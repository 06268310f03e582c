// Durability helpers: fsync of directories with group commit, on a blocking pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>

#include "mailroom/core/blocking.hpp"

namespace mailroom {

/// fsync of one directory, shared by concurrent callers: sync() completes after an fsync of the
/// directory that began after sync() was called, so a rename done before the call is durable.
/// While one fsync runs, later callers queue behind it and the next fsync covers all of them.
/// Thread-safe; never blocks the calling (I/O) thread.
class directory_sync {
 public:
  directory_sync(std::string path, blocking_pool& pool) : path_(std::move(path)), pool_(pool) {}
  task<std::error_code> sync();
  std::string const& path() const noexcept { return path_; }

 private:
  std::string path_;
  blocking_pool& pool_;
  std::atomic<std::uint64_t> requested_{0};  // tickets handed out
  std::mutex mutex_;                         // held by the pool thread flushing
  std::uint64_t synced_ = 0;                 // every ticket <= synced_ is durable (under mutex_)
};

/// fsync of a directory by path, on the calling thread (for set-up paths, not per message).
std::error_code fsync_directory(std::string const& path);

/// Creates `path` with any missing parents, then `children` inside it (mode 0700). Every
/// directory entry this creates is made durable (fsync of its parent), so a crash cannot take
/// away a directory that later holds acknowledged mail.
std::error_code create_directories(std::string const& path, std::initializer_list<std::string_view> children = {});

/// Writes all of data to fd (retrying short writes and EINTR).
std::error_code write_all(int fd, std::string_view data);

}  // namespace mailroom
