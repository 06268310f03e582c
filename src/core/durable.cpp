#include "mailroom/core/durable.hpp"

#include <cerrno>
#include <vector>

#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

namespace mailroom {

std::error_code fsync_directory(std::string const& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return {errno, std::system_category()};
  std::error_code ec;
  if (::fsync(fd) != 0) ec = {errno, std::system_category()};
  ::close(fd);
  return ec;
}

std::error_code create_directories(std::string const& path, std::initializer_list<std::string_view> children) {
  std::vector<std::string> dirty;  // parents whose entries changed
  auto make = [&](std::string const& dir) -> std::error_code {
    if (::mkdir(dir.c_str(), 0700) == 0) {
      auto slash = dir.find_last_of('/');
      dirty.push_back(slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash));
    } else if (errno != EEXIST) {
      return {errno, std::system_category()};
    }
    return {};
  };
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    if (auto ec = make(path.substr(0, i)); ec) return ec;
  }
  for (auto child : children)
    if (auto ec = make(path + "/" + std::string(child)); ec) return ec;
  for (auto const& d : dirty)
    if (auto ec = fsync_directory(d); ec) return ec;
  return {};
}

std::error_code write_all(int fd, std::string_view data) {
  std::size_t off = 0;
  while (off < data.size()) {
    auto n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno, std::system_category()};
    }
    off += static_cast<std::size_t>(n);
  }
  return {};
}

task<std::error_code> directory_sync::sync() {
  std::uint64_t const ticket = requested_.fetch_add(1) + 1;
  // Whoever holds the lock flushes for everyone who asked before it started; the others find
  // their ticket covered and return without another fsync.
  auto flush = [this, ticket]() -> std::error_code {
    std::lock_guard lock(mutex_);
    if (synced_ >= ticket) return {};
    std::uint64_t const covers = requested_.load();  // every ticket so far was taken after its rename
    auto ec = fsync_directory(path_);
    if (!ec) synced_ = covers;
    return ec;
  };
  co_return co_await pool_.offload(std::move(flush));
}

}  // namespace mailroom
