#include "mailroom/store/maildir/writer.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mailroom::store::maildir {

namespace {
std::error_code last_error() { return {errno, std::system_category()}; }


// Maildir names must not contain '/' or ':'; hostnames with them are escaped as Dovecot does.
std::string safe_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string out;
  for (char const* p = buf; *p; ++p) {
    if (*p == '/') out += "\\057";
    else if (*p == ':') out += "\\072";
    else out += *p;
  }
  return out.empty() ? "localhost" : out;
}
}  // namespace

directory::directory(std::string root, blocking_pool& pool)
    : root_(std::move(root)), pool_(pool), new_sync_(root_ + "/new", pool), cur_sync_(root_ + "/cur", pool), hostname_(safe_hostname()) {}

// Creates the Maildir's directories if missing and makes their entries durable.
result<void> ensure_maildir(std::string const& root) {
  if (auto ec = create_directories(root, {"tmp", "new", "cur"}); ec) return fail(ec);
  return {};
}

result<std::shared_ptr<directory>> directory::open(std::string root, blocking_pool& pool) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (auto r = ensure_maildir(root); !r) return fail(r.error());
  return std::make_shared<directory>(std::move(root), pool);
}

std::string directory::unique_name() {
  static std::atomic<std::uint64_t> process_counter{0};
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
  char buf[96];
  std::snprintf(buf, sizeof buf, "%lld.M%06lldP%ldQ%llu.", static_cast<long long>(us / 1000000),
                static_cast<long long>(us % 1000000), static_cast<long>(::getpid()),
                static_cast<unsigned long long>(process_counter.fetch_add(1) + 1));
  return buf + hostname_;
}

task<std::error_code> directory::sync_new() { return new_sync_.sync(); }
task<std::error_code> directory::sync_cur() { return cur_sync_.sync(); }

writer::writer(std::shared_ptr<directory> dir, int fd, std::string name)
    : dir_(std::move(dir)), fd_(fd), name_(std::move(name)) {
  buffer_.reserve(64 * 1024);
}

writer::~writer() { abort(); }

result<std::unique_ptr<writer>> writer::create(std::shared_ptr<directory> dir) {
  auto name = dir->unique_name();
  auto path = dir->root() + "/tmp/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ENOENT) {  // the Maildir was removed under us: recreate it, as MDAs do
    if (auto r = ensure_maildir(dir->root()); !r) return fail(r.error());
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd < 0) return fail(last_error());
  return std::unique_ptr<writer>(new writer(std::move(dir), fd, std::move(name)));
}

result<void> writer::flush_buffer() {
  if (auto ec = write_all(fd_, buffer_); ec) return fail(ec);
  buffer_.clear();
  return {};
}

result<void> writer::write(std::span<char const> data) {
  if (done_) return fail(std::make_error_code(std::errc::bad_file_descriptor));
  size_ += data.size();
  if (buffer_.size() + data.size() > buffer_.capacity()) {
    if (auto r = flush_buffer(); !r) return r;
    if (data.size() >= buffer_.capacity()) {  // large piece: write it straight through
      buffer_.assign(data.data(), data.size());
      return flush_buffer();
    }
  }
  buffer_.append(data.data(), data.size());
  return {};
}

task<result<std::string>> writer::commit(commit_options opts) {
  if (done_) co_return fail(std::make_error_code(std::errc::bad_file_descriptor));
  if (auto r = flush_buffer(); !r) {
    abort();
    co_return fail(r.error());
  }
  std::string final_name = name_ + ",S=" + std::to_string(size_);
  if (opts.to_cur) final_name += ":2," + opts.info;
  std::string from = dir_->root() + "/tmp/" + name_;
  std::string to = dir_->root() + (opts.to_cur ? "/cur/" : "/new/") + final_name;
  int fd = fd_;
  auto root = dir_->root();
  auto mtime = opts.mtime;
  // Named, not a temporary in the co_await expression: g++ 12 double-destroys such temporaries.
  auto publish = [fd, from, to, root, mtime]() -> std::error_code {
    if (mtime) {
      struct timespec times[2] = {{*mtime, 0}, {*mtime, 0}};
      if (::futimens(fd, times) != 0) return last_error();
    }
    if (::fdatasync(fd) != 0) return last_error();
    if (::rename(from.c_str(), to.c_str()) == 0) return {};
    if (errno != ENOENT) return last_error();
    if (auto r = ensure_maildir(root); !r) return r.error();
    if (::rename(from.c_str(), to.c_str()) != 0) return last_error();
    return {};
  };
  auto ec = co_await dir_->pool().offload(std::move(publish));
  if (ec) {
    abort();
    co_return fail(ec);
  }
  ::close(fd_);
  fd_ = -1;
  done_ = true;
  // The file is in place but its directory entry is not durable yet.
  std::error_code dec;
  if (opts.to_cur) dec = co_await dir_->sync_cur();
  else dec = co_await dir_->sync_new();
  if (dec) co_return fail(dec);
  co_return final_name;
}

void writer::abort() noexcept {
  if (done_) return;
  done_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink((dir_->root() + "/tmp/" + name_).c_str());
}

}  // namespace mailroom::store::maildir
