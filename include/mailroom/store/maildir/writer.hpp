// Durable delivery of one message into a Maildir (tmp/ -> new/), streamed.
//
// Contract: commit() returns only after the message file and the new/ directory entry are on
// stable storage (fsync of the file, rename, fsync of new/); a crash before that leaves at most
// a file in tmp/, never a partial file in new/. Directory fsyncs are shared by concurrent
// commits (group commit), so many sessions pay for one directory flush. If that last fsync
// fails, commit() fails although the file is already in new/: the sender retries and the
// message may arrive twice, never zero times (at-least-once).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "mailroom/core/blocking.hpp"
#include "mailroom/core/durable.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"

namespace mailroom::store::maildir {

/// A Maildir's location plus the shared state for group commits. Thread-safe.
class directory {
 public:
  /// Creates root, root/tmp, root/new and root/cur if missing (mode 0700).
  static result<std::shared_ptr<directory>> open(std::string root, blocking_pool& pool);

  std::string const& root() const noexcept { return root_; }
  blocking_pool& pool() noexcept { return pool_; }

  /// Completes after an fsync of new/ (cur/) that began after the call.
  task<std::error_code> sync_new();
  task<std::error_code> sync_cur();

  /// A name unique to this host and process: "<sec>.M<usec>P<pid>Q<n>.<host>".
  std::string unique_name();

  directory(std::string root, blocking_pool& pool);

 private:
  std::string root_;
  blocking_pool& pool_;
  directory_sync new_sync_;
  directory_sync cur_sync_;
  std::string hostname_;
};

class writer {
 public:
  /// Opens a fresh file in tmp/.
  static result<std::unique_ptr<writer>> create(std::shared_ptr<directory> dir);
  ~writer();  ///< an uncommitted file is removed

  /// Appends bytes (buffered).
  result<void> write(std::span<char const> data);
  struct commit_options {
    bool to_cur = false;                  ///< into cur/ with ":2,<info>" (IMAP APPEND, COPY)
    std::string info;                     ///< flag letters, for to_cur
    std::optional<std::int64_t> mtime;    ///< internal date, seconds since the epoch
  };
  /// Makes the message durable in new/ (or cur/) and returns its file name there
  /// ("<unique>,S=<size>", plus ":2,<info>" in cur/).
  task<result<std::string>> commit(commit_options opts);
  task<result<std::string>> commit() { return commit(commit_options{}); }
  /// Drops the message.
  void abort() noexcept;

  std::uint64_t size() const noexcept { return size_; }

 private:
  writer(std::shared_ptr<directory> dir, int fd, std::string name);
  result<void> flush_buffer();

  std::shared_ptr<directory> dir_;
  int fd_;
  std::string name_;
  std::string buffer_;
  std::uint64_t size_ = 0;
  bool done_ = false;
};

}  // namespace mailroom::store::maildir
