#include "mailroom/queue/manager.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::queue {

namespace {
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t max_header_scan = 1024 * 1024;  // the Received: count looks no further

using clock_type = std::chrono::system_clock;

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

// The first `n` octets of a queued message's body.
result<std::string> read_prefix(queued_message const& m, std::uint64_t n) {
  n = std::min(n, m.body_size);
  int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::error_code(errno, std::system_category()));
  std::string out(static_cast<std::size_t>(n), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    auto r = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(m.body_offset + got));
    if (r <= 0) {
      auto ec = r < 0 ? std::error_code(errno, std::system_category()) : std::make_error_code(std::errc::io_error);
      ::close(fd);
      return fail(ec);
    }
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
  return out;
}

// Received: fields in the header at the start of `m`; `complete` tells whether its end was seen.
std::size_t count_received(std::string_view m, bool& complete) {
  std::size_t n = 0, pos = 0;
  complete = false;
  while (pos < m.size()) {
    auto nl = m.find('\n', pos);
    auto line = m.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() && nl != std::string_view::npos) {
      complete = true;
      break;
    }
    if (text::istarts_with(line, "received:")) ++n;
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return n;
}

// Received: fields in a queued message's header (as far as max_header_scan).
std::size_t hop_count(queued_message const& m) {
  bool complete = false;
  std::size_t n = 0;
  for (std::uint64_t want : {std::uint64_t{64 * 1024}, std::uint64_t{max_header_scan}}) {
    auto head = read_prefix(m, want);
    if (!head) return 0;  // unreadable: the delivery will say so
    n = count_received(*head, complete);
    if (complete || head->size() < want) break;
  }
  return n;
}

bool wants(recipient const& r, std::uint8_t flag) {
  return r.params.notify == 0 ? flag != smtp::notify_delay : (r.params.notify & flag) != 0;
}

mta::dsn_recipient dsn_entry(recipient const& r, mta::dsn_action a) {
  mta::dsn_recipient x;
  x.addr = r.addr;
  x.params = r.params;
  x.action = a;
  x.reply = r.last_reply;
  x.error = r.last_error;
  if (r.last_attempt > 0) x.last_attempt = clock_type::from_time_t(static_cast<std::time_t>(r.last_attempt));
  return x;
}

std::string status_text(mta::dsn_recipient const& x) {
  auto s = mta::status_of(x);
  return std::to_string(s[0]) + "." + std::to_string(s[1]) + "." + std::to_string(s[2]);
}

std::string days_of(std::chrono::seconds s) {
  auto h = std::chrono::duration_cast<std::chrono::hours>(s).count();
  if (h >= 48) return std::to_string(h / 24) + " days";
  if (h >= 1) return std::to_string(h) + " hours";
  return std::to_string(s.count()) + " seconds";
}
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

clock_type::time_point manager::now() const { return opts_.clock ? opts_.clock() : clock_type::now(); }

std::chrono::seconds manager::backoff(std::uint32_t attempts) const {
  auto first = std::max<std::int64_t>(opts_.retry_initial.count(), 1);
  auto cap = std::max<std::int64_t>(opts_.retry_max.count(), first);
  double wait = static_cast<double>(first) *
                std::pow(std::max(opts_.retry_factor, 1.0), attempts <= 1 ? 0.0 : static_cast<double>(attempts - 1));
  if (!(wait < static_cast<double>(cap))) return std::chrono::seconds(cap);  // also overflow, NaN
  return std::chrono::seconds(static_cast<std::int64_t>(wait));
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
      if (auto due = spool_->due(now()))
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

task<void> manager::deliver_group(queued_message const& m, std::vector<std::size_t> const& idx,
                                  std::vector<recipient>& st, std::vector<outcome>& out) {
  auto const& env = m.env;
  auto const attempted = static_cast<std::int64_t>(clock_type::to_time_t(now()));
  delivery::message_context ctx;
  ctx.session_id = env.id;
  ctx.helo = env.helo;
  ctx.protocol = env.protocol;
  ctx.auth_user = env.auth_user;
  ctx.params = env.params;
  auto note_error = [&](std::size_t i, std::string why) {
    st[i].last_attempt = attempted;
    st[i].last_reply.reset();
    st[i].last_error = std::move(why);
    out[i] = outcome::retry;
  };
  auto note_reply = [&](std::size_t i, smtp::reply const& r) {
    st[i].last_attempt = attempted;
    st[i].last_reply = r;
    st[i].last_error.clear();
    out[i] = r.permanent() ? outcome::failed : outcome::retry;
  };
  auto d = co_await target_->start(ctx, env.sender);
  if (!d) {
    for (auto i : idx) note_error(i, d.error().message());
    co_return;
  }
  std::vector<std::size_t> accepted;
  for (auto i : idx) {
    auto const& r = env.recipients[i];
    auto refused = co_await (*d)->add_rcpt(r.addr, r.params);
    if (!refused) {
      accepted.push_back(i);
    } else {
      note_reply(i, *refused);
      if (refused->permanent())
        log_.warning("recipient refused permanently", {{"queue_id", env.id}, {"to", r.addr.to_string()},
                                                       {"reply", st[i].last_outcome()}});
    }
  }
  if (accepted.empty()) {
    (*d)->abort();
    co_return;
  }
  file_source src(m);  // each group reads the body from its start
  result<std::string> committed = fail(errc::invalid_argument);
  auto stored = co_await (*d)->body(src);
  if (stored) {
    auto c = co_await (*d)->commit();
    committed = std::move(c);
  } else {
    committed = fail(stored.error());
  }
  if (committed) {
    ++delivered_;
    // Targets that learn each recipient's fate only at the end (LMTP, pipelined SMTP) say it
    // here; a recipient without an entry counts as delivered.
    auto const fates = (*d)->recipient_outcomes();
    std::size_t done_n = 0;
    for (std::size_t j = 0; j < accepted.size(); ++j) {
      auto i = accepted[j];
      if (j < fates.size() && fates[j]) {
        note_reply(i, *fates[j]);
        if (fates[j]->permanent())
          log_.warning("recipient refused permanently after the data",
                       {{"queue_id", env.id}, {"to", env.recipients[i].addr.to_string()}, {"reply", st[i].last_outcome()}});
      } else {
        out[i] = outcome::done;
        ++done_n;
      }
    }
    log_.info("delivered", {{"queue_id", env.id}, {"to", std::to_string(done_n)}, {"where", *committed}});
    co_return;
  }
  auto why = (*d)->failure_reply();  // before abort(), which may forget it
  (*d)->abort();
  for (auto i : accepted) {
    if (why)
      note_reply(i, *why);
    else
      note_error(i, committed.error().message());
  }
  if (why && why->permanent())
    log_.warning("message refused permanently", {{"queue_id", env.id}, {"to", std::to_string(accepted.size())},
                                                 {"reply", st[accepted.front()].last_outcome()}});
}

task<result<std::string>> manager::queue_dsn(queued_message const& m, std::vector<mta::dsn_recipient> const& rcpts) {
  auto const& env = m.env;
  mta::dsn_report rep;
  rep.reporting_mta = opts_.hostname;
  rep.sender = env.sender;
  rep.envid = env.params.envid;
  rep.ret = env.params.ret;
  rep.smtputf8 = env.params.smtputf8;
  rep.queue_id = env.id;
  rep.arrival = clock_type::from_time_t(static_cast<std::time_t>(env.arrival));
  rep.now = now();
  rep.recipients = rcpts;
  rep.max_returned = opts_.dsn_max_returned;
  // A large original comes back as its header only: no need to read all of it.
  bool const large = m.body_size > rep.max_returned;
  if (large) rep.ret = smtp::dsn_ret::headers;
  auto original = read_prefix(m, large ? rep.max_returned + 1 : m.body_size);
  if (!original) co_return fail(original.error());
  auto const text = mta::make_dsn(rep, *original);
  delivery::message_context ctx;
  ctx.session_id = env.id;
  ctx.helo = opts_.hostname;
  ctx.protocol = "DSN";
  ctx.params = mta::dsn_mail_params(rep, text);
  address const null_sender{};
  smtp::rcpt_params const no_params{};
  auto d = co_await spool_->start(ctx, null_sender);
  if (!d) co_return fail(d.error());
  if (auto refused = co_await (*d)->add_rcpt(env.sender, no_params)) {
    (*d)->abort();
    co_return fail(errc::limit_exceeded);
  }
  smtp::memory_source src(text);
  auto stored = co_await (*d)->body(src);
  if (!stored) {
    (*d)->abort();
    co_return fail(stored.error());
  }
  auto id = co_await (*d)->commit();
  if (!id) (*d)->abort();
  co_return id;
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
  auto const& env = m->env;
  auto const t0 = now();
  auto const arrival = clock_type::from_time_t(static_cast<std::time_t>(env.arrival));
  auto const expiry = arrival + opts_.max_age;
  std::vector<recipient> st = env.recipients;  // each one's state after this attempt
  std::vector<outcome> out(st.size(), outcome::retry);
  std::vector<mta::dsn_status> status(st.size(), mta::dsn_status{0, 0, 0});  // overrides for the DSN

  // Loops: too many Received: fields and the message goes nowhere (RFC 5321 6.3).
  auto const hops = hop_count(*m);
  if (hops > opts_.max_hops) {
    log_.warning("routing loop: too many Received: header fields",
                 {{"queue_id", id}, {"received", std::to_string(hops)}, {"max_hops", std::to_string(opts_.max_hops)}});
    auto const at = static_cast<std::int64_t>(clock_type::to_time_t(t0));
    for (std::size_t i = 0; i < st.size(); ++i) {
      st[i].last_attempt = at;
      st[i].last_reply.reset();
      st[i].last_error = "routing loop detected: the message has " + std::to_string(hops) +
                         " Received: header fields (at most " + std::to_string(opts_.max_hops) + " are allowed)";
      out[i] = outcome::failed;
      status[i] = {5, 4, 6};
    }
  } else {
    // One delivery per group key, in the order the recipients came.
    std::vector<std::vector<std::size_t>> groups;
    std::map<std::string, std::size_t> group_of;
    auto const limit = target_->max_recipients();
    for (std::size_t i = 0; i < st.size(); ++i) {
      auto key = target_->group_key(st[i].addr);
      auto [it, fresh] = group_of.try_emplace(key, groups.size());
      if (!fresh && limit && groups[it->second].size() >= limit) {  // full: the next chunk of this key
        it->second = groups.size();
        fresh = true;
      }
      if (fresh) groups.emplace_back();
      groups[it->second].push_back(i);
    }
    for (auto const& g : groups) co_await deliver_group(*m, g, st, out);
  }

  // What becomes of each recipient, and what the sender is told.
  auto const t1 = now();
  bool const expired = t1 >= expiry;
  std::vector<recipient> pending, unreported;  // unreported: failed, to be told, if the DSN fails
  std::vector<mta::dsn_recipient> report;
  bool reports_failure = false;
  for (std::size_t i = 0; i < st.size(); ++i) {
    auto const& r = st[i];
    if (out[i] == outcome::done) continue;
    if (out[i] == outcome::retry && !expired) {
      pending.push_back(r);
      continue;
    }
    ++failed_;
    auto x = dsn_entry(r, mta::dsn_action::failed);
    if (out[i] == outcome::retry) {  // expired while failing temporarily
      x.status = {4, 4, 7};
      x.error = "delivery time expired: the message was in the queue for " + days_of(opts_.max_age);
      if (!r.last_error.empty()) x.error += "; last error: " + r.last_error;
    } else if (status[i][0] != 0) {
      x.status = status[i];
    }
    log_.warning("recipient failed", {{"queue_id", id}, {"to", r.addr.to_string()}, {"status", status_text(x)},
                                      {"reason", x.error.empty() ? r.last_outcome() : x.error}});
    if (env.sender.is_null()) {
      log_.warning("no DSN for a failed DSN or null-sender message (never bounce a bounce); recipient dropped",
                   {{"queue_id", id}, {"to", r.addr.to_string()}});
    } else if (!wants(r, smtp::notify_failure)) {
      log_.info("no DSN: the recipient's NOTIFY excludes FAILURE", {{"queue_id", id}, {"to", r.addr.to_string()}});
    } else {
      report.push_back(std::move(x));
      unreported.push_back(r);
      reports_failure = true;
    }
  }
  // The delay warning, once per message.
  bool warns = false;
  if (!pending.empty() && env.delay_warned == 0 && !env.sender.is_null()) {
    auto const after = opts_.delay_warning.count() > 0 ? opts_.delay_warning : default_delay_warning;
    if (t1 - arrival >= after)
      for (auto const& r : pending) {
        bool asked = (r.params.notify & smtp::notify_delay) != 0;
        if (!asked && !(r.params.notify == 0 && opts_.delay_warning.count() > 0)) continue;
        auto x = dsn_entry(r, mta::dsn_action::delayed);
        x.will_retry_until = expiry;
        report.push_back(std::move(x));
        warns = true;
      }
  }
  bool hold = false;
  if (!report.empty()) {
    auto dsn = co_await queue_dsn(*m, report);
    if (dsn) {
      ++dsns_;
      log_.info(reports_failure ? "DSN queued (failure)" : "DSN queued (delay)",
                {{"queue_id", id}, {"dsn_id", *dsn}, {"to", env.sender.to_string()},
                 {"recipients", std::to_string(report.size())}});
    } else {
      warns = false;
      hold = reports_failure;
      log_.error(hold ? "cannot queue the DSN; message held for the postmaster"
                      : "cannot queue the delay DSN; will try at the next attempt",
                 {{"queue_id", id}, {"error", dsn.error().message()}});
    }
  }

  if (hold) {
    envelope kept = env;
    kept.recipients = pending;
    kept.recipients.insert(kept.recipients.end(), unreported.begin(), unreported.end());
    co_await rewrite_or_keep(*m, kept);
    auto r = co_await spool_->move(id, state::active, state::hold);
    if (!r) log_.error("cannot hold", {{"queue_id", id}, {"error", r.error().message()}});
    ++held_;
  } else if (pending.empty()) {
    ::unlink(m->path.c_str());  // every recipient done or reported: the queue file's job is done
  } else {
    envelope next = env;
    next.recipients = pending;
    ++next.attempts;
    if (warns) next.delay_warned = static_cast<std::int64_t>(clock_type::to_time_t(t1));
    co_await rewrite_or_keep(*m, next);
    auto r = co_await spool_->move(id, state::active, state::deferred);
    auto when = std::min(t1 + backoff(next.attempts), expiry);
    if (r) r = co_await spool_->defer_until(id, when);
    if (!r) log_.error("cannot defer", {{"queue_id", id}, {"error", r.error().message()}});
    ++deferred_;
    log_.info("deferred", {{"queue_id", id}, {"recipients", std::to_string(pending.size())},
                           {"attempts", std::to_string(next.attempts)}, {"error", pending.front().last_outcome()}});
  }
  done();
}

}  // namespace mailroom::queue
