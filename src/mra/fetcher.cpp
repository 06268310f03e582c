#include "mailroom/mra/fetcher.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

#include "mailroom/core/durable.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/imap/client.hpp"
#include "mailroom/mime/message.hpp"
#include "mailroom/net/tcp_stream.hpp"
#include "mailroom/net/tls/context.hpp"
#include "mailroom/pop3/client.hpp"

namespace mailroom::mra {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// A whole message handed to a delivery in pieces.
class string_source final : public smtp::message_source {
 public:
  explicit string_source(std::string const& s) : s_(s) {}
  task<result<std::span<char const>>> read() override {
    auto n = std::min<std::size_t>(64 * 1024, s_.size() - pos_);
    std::span<char const> out(s_.data() + pos_, n);
    pos_ += n;
    co_return out;
  }
  std::uint64_t size() const noexcept override { return pos_; }

 private:
  std::string const& s_;
  std::size_t pos_ = 0;
};

// The POP3 and IMAP clients take the same connection and login settings.
template <class Options>
Options client_options_for(account const& a) {
  Options o;
  o.tls = a.tls;  // with implicit TLS: how the certificate is checked
  o.implicit_tls = a.implicit_tls;
  o.tls_context = a.tls_context;
  o.tls_name = a.host;
  o.user = a.user;
  o.password = a.password;
  o.allow_plaintext_auth = a.allow_plaintext_auth;
  return o;
}

}  // namespace

fetcher::fetcher(executor ex, account acct, std::shared_ptr<delivery::delivery_target> target, std::string state_dir,
                 net::dns::resolver* dns, log::logger logger)
    : ex_(std::move(ex)), acct_(std::move(acct)), target_(std::move(target)),
      state_path_(std::move(state_dir) + "/" + acct_.id + ".state"), dns_(dns), log_(std::move(logger)) {}

result<void> fetcher::load_state() {
  // Read afresh every round: another process (mailroomctl fetch run) may have fetched meanwhile.
  auto slash = state_path_.rfind('/');
  if (auto ec = create_directories(state_path_.substr(0, slash)); ec) return fail(ec);
  seen_.clear();
  uidvalidity_ = 0;
  log_lines_ = 0;
  std::ifstream in(state_path_);
  std::string line;
  while (std::getline(in, line)) {
    ++log_lines_;
    if (line.starts_with("seen ")) seen_.insert(line.substr(5));
    else if (line.starts_with("uidvalidity ")) {
      auto v = static_cast<std::uint32_t>(std::strtoul(line.c_str() + 12, nullptr, 10));
      if (v != uidvalidity_) seen_.clear();  // a new numbering: what came before is void
      uidvalidity_ = v;
    }
  }
  if (log_lines_ > 2 * seen_.size() + 100) return compact();
  return {};
}

result<void> fetcher::lock() {
  if (lock_fd_ >= 0) return {};
  auto slash = state_path_.rfind('/');
  if (auto ec = create_directories(state_path_.substr(0, slash)); ec) return fail(ec);
  int fd = ::open((state_path_ + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail(std::error_code(errno, std::generic_category()));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return fail(std::make_error_code(std::errc::resource_unavailable_try_again));
  }
  lock_fd_ = fd;
  return {};
}

void fetcher::unlock() noexcept {
  if (lock_fd_ < 0) return;
  ::close(lock_fd_);  // releases the flock
  lock_fd_ = -1;
}

fetcher::~fetcher() { unlock(); }

result<void> fetcher::remember(std::string const& line) {
  int fd = ::open(state_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return fail(std::error_code(errno, std::generic_category()));
  bool created = log_lines_ == 0;
  auto ec = write_all(fd, line + "\n");
  if (!ec && ::fdatasync(fd) != 0) ec = std::error_code(errno, std::generic_category());
  ::close(fd);
  if (ec) return fail(ec);
  if (created) {  // the file's directory entry must survive too
    auto slash = state_path_.rfind('/');
    if (auto dc = fsync_directory(state_path_.substr(0, slash)); dc) return fail(dc);
  }
  ++log_lines_;
  return {};
}

result<void> fetcher::compact() {
  std::string content;
  if (uidvalidity_) content += "uidvalidity " + std::to_string(uidvalidity_) + "\n";
  for (auto const& s : seen_) content += "seen " + s + "\n";
  auto tmp = state_path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(std::error_code(errno, std::generic_category()));
  auto ec = write_all(fd, content);
  if (!ec && ::fsync(fd) != 0) ec = std::error_code(errno, std::generic_category());
  ::close(fd);
  if (!ec && ::rename(tmp.c_str(), state_path_.c_str()) != 0) ec = std::error_code(errno, std::generic_category());
  if (!ec) ec = fsync_directory(state_path_.substr(0, state_path_.rfind('/')));
  if (ec) return fail(ec);
  log_lines_ = (uidvalidity_ ? 1 : 0) + seen_.size();
  return {};
}

task<result<std::unique_ptr<net::stream>>> fetcher::connect() {
  std::vector<asio::ip::address> addrs;
  std::error_code ec;
  auto lit = asio::ip::make_address(acct_.host, ec);
  if (!ec) {
    addrs.push_back(lit);
  } else if (dns_) {
    auto v6 = co_await dns_->aaaa(acct_.host);
    if (v6) addrs.insert(addrs.end(), v6->begin(), v6->end());
    auto v4 = co_await dns_->a(acct_.host);
    if (v4) addrs.insert(addrs.end(), v4->begin(), v4->end());
  }
  if (addrs.empty()) co_return fail(errc::not_found);
  std::error_code last = make_error_code(errc::unavailable);
  for (auto const& a : addrs) {
    auto s = co_await net::tcp_stream::connect(ex_, asio::ip::tcp::endpoint(a, acct_.port), std::chrono::seconds(30));
    if (!s) {
      last = s.error();
      continue;
    }
    std::unique_ptr<net::stream> out = std::move(*s);
    co_return out;
  }
  co_return fail(last);
}

task<result<std::string>> fetcher::deliver(std::string const& message) {
  delivery::message_context ctx;
  ctx.session_id = acct_.id;
  ctx.protocol = acct_.proto == account::protocol::pop3 ? "POP3" : "IMAP";
  ctx.helo = acct_.host;
  // The envelope sender: the message's Return-Path when it has one, else the null path.
  address from;
  std::vector<mime::field> fields;
  (void)mime::parse_header(message, 0, fields);
  for (auto const& f : fields) {
    if (!text::iequals(f.name, "Return-Path")) continue;
    auto v = mime::unfold(f.value);
    auto lt = v.find('<'), gt = v.rfind('>');
    if (lt != std::string::npos && gt != std::string::npos && gt > lt) {
      path_options po;
      po.allow_null = true;
      po.allow_utf8 = true;
      if (auto p = parse_path(std::string_view(v).substr(lt, gt - lt + 1), po)) from = *p;
    }
    break;
  }
  auto d = co_await target_->start(ctx, from);
  if (!d) co_return fail(d.error());
  smtp::rcpt_params params;
  auto refused = co_await (*d)->add_rcpt(acct_.deliver_to, params);
  if (refused) {
    (*d)->abort();
    log_.warning("local delivery refused", {{"account", acct_.id}, {"reply", refused->wire(true)}});
    co_return fail(errc::unavailable);
  }
  string_source src(message);
  auto b = co_await (*d)->body(src);
  if (!b) {
    (*d)->abort();
    co_return fail(b.error());
  }
  auto c = co_await (*d)->commit();
  if (!c) co_return fail(c.error());
  auto outcomes = (*d)->recipient_outcomes();
  if (!outcomes.empty() && outcomes.front()) co_return fail(errc::unavailable);
  co_return *c;
}

task<result<fetch_stats>> fetcher::fetch_pop3(std::unique_ptr<net::stream> s) {
  auto o = client_options_for<pop3::client_options>(acct_);
  pop3::client c(std::move(s), o, log_);
  fetch_stats st;
  if (auto l = co_await c.login(); !l) co_return fail(l.error());
  auto list = co_await c.list();
  if (!list) co_return fail(list.error());
  for (auto const& m : *list) {
    if (stopping_) break;
    bool already = seen_.count(m.uidl) > 0;
    if (!already) {
      if (m.size > acct_.max_size) {
        ++st.skipped;
        log_.warning("message too large, left on the server", {{"account", acct_.id}, {"uidl", m.uidl}});
        continue;
      }
      auto msg = co_await c.retrieve(m.number, acct_.max_size);
      if (!msg) co_return fail(msg.error());
      auto where = co_await deliver(*msg);
      if (!where) co_return fail(where.error());
      if (auto r = remember("seen " + m.uidl); !r) co_return fail(r.error());
      seen_.insert(m.uidl);
      ++st.fetched;
    } else {
      ++st.seen;
    }
    if (!acct_.keep) {  // delivered (now or before): the server may forget it
      if (auto d = co_await c.dele(m.number); !d) co_return fail(d.error());
      ++st.deleted;
    }
  }
  if (auto q = co_await c.quit(); !q) co_return fail(q.error());
  // What the server no longer has need not be remembered.
  if (!acct_.keep || seen_.size() > list->size() + 1000) {
    std::set<std::string> present;
    for (auto const& m : *list)
      if (acct_.keep && seen_.count(m.uidl)) present.insert(m.uidl);
    seen_ = std::move(present);
    if (auto r = compact(); !r) co_return fail(r.error());
  }
  co_return st;
}

task<result<fetch_stats>> fetcher::fetch_imap(std::unique_ptr<net::stream> s, bool then_idle) {
  auto o = client_options_for<imap::client_options>(acct_);
  imap::client c(std::move(s), o, log_);
  fetch_stats st;
  if (auto l = co_await c.login(); !l) co_return fail(l.error());
  auto box = co_await c.select(acct_.folder, acct_.keep);
  if (!box) co_return fail(box.error());
  if (box->uidvalidity != uidvalidity_) {
    if (uidvalidity_) log_.notice("UIDVALIDITY changed: fetching the folder again", {{"account", acct_.id}});
    seen_.clear();
    uidvalidity_ = box->uidvalidity;
    if (auto r = remember("uidvalidity " + std::to_string(uidvalidity_)); !r) co_return fail(r.error());
  }
  for (;;) {
    auto refs = co_await c.list_from(1);
    if (!refs) co_return fail(refs.error());
    std::vector<std::uint32_t> done;
    for (auto const& m : *refs) {
      if (stopping_) break;
      auto id = std::to_string(m.uid);
      if (seen_.count(id)) {
        ++st.seen;
        done.push_back(m.uid);
        continue;
      }
      if (m.size > acct_.max_size) {
        ++st.skipped;
        log_.warning("message too large, left on the server", {{"account", acct_.id}, {"uid", id}});
        continue;
      }
      auto msg = co_await c.fetch(m.uid, acct_.max_size);
      if (!msg) {
        if (msg.error() == imap::errc::no_such_message) continue;  // expunged meanwhile
        co_return fail(msg.error());
      }
      auto where = co_await deliver(*msg);
      if (!where) co_return fail(where.error());
      if (auto r = remember("seen " + id); !r) co_return fail(r.error());
      seen_.insert(id);
      done.push_back(m.uid);
      ++st.fetched;
    }
    if (!acct_.keep && !done.empty()) {
      if (auto r = co_await c.remove(done); !r) co_return fail(r.error());
      st.deleted += done.size();
      for (auto u : done) seen_.erase(std::to_string(u));
      if (auto r = compact(); !r) co_return fail(r.error());
    }
    if (!then_idle || stopping_) break;
    idling_ = &c;
    auto woke = co_await c.idle(std::chrono::minutes(29));
    idling_ = nullptr;
    if (!woke) co_return fail(woke.error());
  }
  co_await c.logout();
  co_return st;
}

task<result<fetch_stats>> fetcher::fetch_once() {
  if (auto l = lock(); !l) co_return fail(l.error());
  result<fetch_stats> out = fail(errc::cancelled);
  if (auto r = load_state(); !r) {
    out = fail(r.error());
  } else {
    auto s = co_await connect();
    if (!s) out = fail(s.error());
    else if (acct_.proto == account::protocol::pop3) out = co_await fetch_pop3(std::move(*s));
    else out = co_await fetch_imap(std::move(*s), false);
  }
  unlock();
  co_return out;
}

task<void> fetcher::run() {
  auto self = shared_from_this();
  timer_ = std::make_unique<asio::steady_timer>(ex_);
  auto backoff = acct_.interval;
  while (!stopping_) {
    result<fetch_stats> r = fail(errc::cancelled);
    if (auto k = lock(); !k) {
      r = fail(k.error());  // another process is fetching this account now
    } else if (auto l = load_state(); !l) {
      r = fail(l.error());
    } else {
      auto s = co_await connect();
      if (!s) r = fail(s.error());
      else if (acct_.proto == account::protocol::pop3) r = co_await fetch_pop3(std::move(*s));
      else r = co_await fetch_imap(std::move(*s), acct_.idle);
    }
    unlock();
    std::chrono::seconds wait = acct_.interval;
    if (r) {
      backoff = acct_.interval;
      if (r->fetched) log_.info("fetched", {{"account", acct_.id}, {"messages", std::to_string(r->fetched)}});
    } else {
      log_.warning("fetch failed", {{"account", acct_.id}, {"error", r.error().message()}});
      wait = backoff;
      backoff = std::min<std::chrono::seconds>(backoff * 2, std::chrono::hours(1));
    }
    if (stopping_) break;
    timer_->expires_after(wait);
    co_await timer_->async_wait(use_tuple);
  }
}

void fetcher::stop() {
  stopping_ = true;
  if (timer_) timer_->cancel();
  if (idling_) idling_->close();
}

}  // namespace mailroom::mra
