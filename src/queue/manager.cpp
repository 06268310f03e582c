#include "mailroom/queue/manager.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/error.hpp"

namespace mailroom::queue {

namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// A queued body, read from its file in pieces.
class file_source final : public smtp::message_source {
 public:
  explicit file_source(queued_message const& m) : m_(m), fd_(::open(m.path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~file_source() override {
    if (fd_ >= 0) ::close(fd_);
  }
  task<result<std::span<char const>>> read() override {
    if (fd_ < 0) co_return fail(std::error_code(errno, std::system_category()));
    auto left = m_.body_size - pos_;
    if (left == 0) co_return std::span<char const>{};
    buf_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(left, 64 * 1024)));
    auto n = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(m_.body_offset + pos_));
    if (n <= 0) co_return fail(n < 0 ? std::error_code(errno, std::system_category()) : std::make_error_code(std::errc::io_error));
    pos_ += static_cast<std::uint64_t>(n);
    co_return std::span<char const>(buf_.data(), static_cast<std::size_t>(n));
  }
  std::uint64_t size() const noexcept override { return pos_; }

 private:
  queued_message const& m_;
  int fd_;
  std::string buf_;
  std::uint64_t pos_ = 0;
};
}  // namespace

manager::manager(executor ex, std::shared_ptr<spool> sp, std::shared_ptr<delivery::delivery_target> target,
                 manager_options opts, log::logger logger)
    : ex_(ex), spool_(std::move(sp)), target_(std::move(target)), opts_(std::move(opts)),
      log_(logger.with_component("qmgr")), timer_(ex) {}

void manager::wake() {
  asio::post(ex_, [self = shared_from_this()] {
    self->woken_ = true;
    self->timer_.cancel();
  });
}

void manager::stop() {
  asio::post(ex_, [self = shared_from_this()] {
    self->stopping_ = true;
    self->timer_.cancel();
  });
}

std::chrono::seconds manager::backoff(std::uint32_t attempts) const {
  if (opts_.retry.empty()) return std::chrono::minutes(5);
  auto i = std::min<std::size_t>(attempts == 0 ? 0 : attempts - 1, opts_.retry.size() - 1);
  return opts_.retry[i];
}

task<void> manager::run() {
  auto self = shared_from_this();
  if (auto r = co_await spool_->recover(); !r) log_.error("queue recovery failed", {{"error", r.error().message()}});
  auto last_scan = std::chrono::steady_clock::time_point{};
  while (!stopping_) {
    woken_ = false;
    // Deferred messages whose time has come go back to incoming/.
    if (std::chrono::steady_clock::now() - last_scan >= opts_.scan_interval) {
      last_scan = std::chrono::steady_clock::now();
      if (auto due = spool_->due(std::chrono::system_clock::now()))
        for (auto const& id : *due)
          if (auto r = co_await spool_->move(id, state::deferred, state::incoming); !r)
            log_.error("cannot requeue", {{"queue_id", id}, {"error", r.error().message()}});
    }
    // Fill the active window, oldest first.
    if (auto ids = spool_->list(state::incoming)) {
      for (auto const& id : *ids) {
        if (in_flight_.size() >= opts_.active_window || stopping_) break;
        if (in_flight_.count(id)) continue;
        if (auto r = co_await spool_->move(id, state::incoming, state::active); !r) {
          log_.error("cannot activate", {{"queue_id", id}, {"error", r.error().message()}});
          continue;
        }
        in_flight_.insert(id);
        asio::co_spawn(ex_, deliver(id), asio::detached);
      }
    }
    if (woken_ || stopping_) continue;
    timer_.expires_after(opts_.scan_interval);
    co_await timer_.async_wait(use_tuple);
  }
  while (!in_flight_.empty()) {  // let deliveries in progress finish
    timer_.expires_after(std::chrono::milliseconds(20));
    co_await timer_.async_wait(use_tuple);
  }
}

task<void> manager::rewrite_or_keep(queued_message const& m, envelope const& next) {
  auto r = co_await spool_->rewrite(state::active, m, next);
  if (r) co_return;
  // Rewriting needs a second copy of the file, which a full disk does not have. The original
  // still names every recipient, so keeping it can only repeat a delivery, never lose one; the
  // message must not stay in active/, where nothing would look at it again until a restart.
  log_.warning("cannot rewrite the queue file; keeping it as it is (some recipients may get a second copy)",
               {{"queue_id", m.env.id}, {"error", r.error().message()}});
}

task<void> manager::deliver(std::string id) {
  auto self = shared_from_this();
  auto done = [&] {
    in_flight_.erase(id);
    woken_ = true;
    timer_.cancel();
  };
  auto m = spool_->read(state::active, id);
  if (!m) {  // corrupt files were moved to corrupt/ by read()
    done();
    co_return;
  }
  auto& env = m->env;
  delivery::message_context ctx;
  ctx.session_id = env.id;
  ctx.helo = env.helo;
  ctx.protocol = env.protocol;
  ctx.auth_user = env.auth_user;
  ctx.params = env.params;
  std::vector<recipient> retry, failed;
  std::string last_error;
  auto d = co_await target_->start(ctx, env.sender);
  if (!d) {
    retry = env.recipients;
    last_error = d.error().message();
  } else {
    std::vector<recipient> accepted;
    for (auto const& r : env.recipients) {
      auto refused = co_await (*d)->add_rcpt(r.addr, r.params);
      if (!refused) {
        accepted.push_back(r);
      } else if (refused->transient()) {
        retry.push_back(r);
        last_error = refused->wire(true);
      } else {
        failed.push_back(r);
        log_.warning("recipient refused permanently (no bounce yet: message kept in hold)",
                     {{"queue_id", id}, {"to", r.addr.to_string()}, {"reply", refused->wire(true)}});
      }
    }
    if (!accepted.empty()) {
      file_source src(*m);
      result<std::string> committed = fail(errc::invalid_argument);
      auto stored = co_await (*d)->body(src);
      if (stored)
        committed = co_await (*d)->commit();
      else
        committed = fail(stored.error());
      if (!committed) {
        (*d)->abort();
        last_error = committed.error().message();
        retry.insert(retry.end(), accepted.begin(), accepted.end());
      } else {
        ++delivered_;
        log_.info("delivered", {{"queue_id", id}, {"to", std::to_string(accepted.size())}, {"where", *committed}});
      }
    } else {
      (*d)->abort();
    }
  }

  auto now = std::chrono::system_clock::now();
  auto age = std::chrono::seconds(std::chrono::system_clock::to_time_t(now) - env.arrival);
  if (retry.empty() && failed.empty()) {
    ::unlink(m->path.c_str());  // delivered everywhere: the queue file's job is done
  } else if (!retry.empty() && age < opts_.max_age) {
    envelope next = env;
    next.recipients = retry;
    ++next.attempts;
    co_await rewrite_or_keep(*m, next);
    auto r = co_await spool_->move(id, state::active, state::deferred);
    auto when = now + backoff(next.attempts);
    if (r) r = co_await spool_->defer_until(id, when);
    if (!r) log_.error("cannot defer", {{"queue_id", id}, {"error", r.error().message()}});
    ++deferred_;
    log_.info("deferred", {{"queue_id", id}, {"recipients", std::to_string(retry.size())},
                           {"attempts", std::to_string(next.attempts)}, {"error", last_error}});
  } else {
    envelope kept = env;
    kept.recipients = retry;
    kept.recipients.insert(kept.recipients.end(), failed.begin(), failed.end());
    co_await rewrite_or_keep(*m, kept);
    auto r = co_await spool_->move(id, state::active, state::hold);
    if (!r) log_.error("cannot hold", {{"queue_id", id}, {"error", r.error().message()}});
    ++held_;
    log_.warning("held for the postmaster", {{"queue_id", id}, {"recipients", std::to_string(kept.recipients.size())}});
  }
  done();
}

}  // namespace mailroom::queue
