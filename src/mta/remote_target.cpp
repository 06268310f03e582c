#include "mailroom/mta/remote_target.hpp"

#include <algorithm>
#include <random>

#include <asio/ip/address.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/tcp_stream.hpp"

namespace mailroom::mta {

namespace dlv = mailroom::delivery;

namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  auto out = text::to_lower(s);
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// "[192.0.2.1]" or "192.0.2.1" or "[IPv6:2001:db8::1]" -> the address.
std::optional<asio::ip::address> literal(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (text::istarts_with(host, "IPv6:")) host.remove_prefix(5);
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  return a;
}

// Counts what was read, so a transaction that failed before the body was touched can be
// retried on a fresh connection with the same source.
class counting_source final : public smtp::message_source {
 public:
  explicit counting_source(smtp::message_source& inner) : inner_(inner) {}
  task<result<std::span<char const>>> read() override {
    touched_ = true;
    co_return co_await inner_.read();
  }
  std::uint64_t size() const noexcept override { return inner_.size(); }
  bool touched() const noexcept { return touched_; }

 private:
  smtp::message_source& inner_;
  bool touched_ = false;
};

}  // namespace

class remote_target::remote_delivery final : public dlv::delivery {
 public:
  remote_delivery(std::shared_ptr<remote_target> t, dlv::message_context ctx, address from)
      : t_(std::move(t)), ctx_(std::move(ctx)), from_(std::move(from)) {}

  task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const& params) override {
    rcpts_.emplace_back(to, params);
    co_return std::nullopt;  // the remote verdict comes with the transaction (recipient_outcomes)
  }

  task<result<void>> body(smtp::message_source& src) override {
    if (rcpts_.empty()) co_return fail(errc::invalid_argument);
    auto key = t_->group_key(rcpts_.front().first);
    smtp::outgoing tx;
    tx.from = from_;
    tx.params = ctx_.params;
    tx.rcpts = rcpts_;
    tx.eight_bit = ctx_.params.body == smtp::body_type::eight_bit_mime || ctx_.params.body == smtp::body_type::binary_mime;
    counting_source counted(src);
    std::optional<connection> held;
    result<smtp::transaction_result> r = fail(errc::unavailable);
    for (bool fresh = false;; fresh = true) {
      auto cr = co_await t_->connect(key, fresh);
      if (!cr.conn) {
        // A refusal decides (5xx bounces); otherwise a temporary reply that says why, for the
        // queue's records and an eventual DSN.
        failure_ = cr.refusal ? *cr.refusal : smtp::reply(451, {4, 4, 1}, "No usable server: " + cr.error);
        t_->log_.info("no destination reached", {{"session", ctx_.session_id}, {"domain", key}, {"why", cr.error}});
        co_return fail(errc::unavailable);
      }
      held = std::move(cr.conn);
      r = co_await held->client->send(tx, counted);
      // A cached connection the server is closing answers 421 (idle timeout): a fresh one, once.
      bool closing = r && r->mail && r->mail->code == 421;
      if (r && !(closing && held->reused && !fresh && !counted.touched())) break;
      if (closing) r = fail(errc::unavailable);
      // The connection is in an unknown state: drop it. A cached one the server had closed is
      // replaced once, as long as the body was not read yet.
      t_->log_.info("transaction failed", {{"session", ctx_.session_id}, {"peer", held->peer}, {"error", r.error().message()}});
      co_await held->client->quit();
      t_->release(key);
      if (held->reused && !fresh && !counted.touched()) continue;
      failure_ = smtp::reply(451, {4, 4, 2}, "Lost connection with " + held->peer + ": " + r.error().message());
      co_return fail(r.error());
    }
    auto conn = std::move(*held);
    where_ = conn.peer;
    if (r->mail) {
      failure_ = *r->mail;
    } else if (r->data_refused) {
      failure_ = *r->data_refused;
    } else {
      // One verdict per recipient: its RCPT reply when refused, else the DATA reply (LMTP: the
      // reply for that recipient).
      std::size_t accepted = 0;
      for (auto const& rr : r->rcpt) {
        if (!rr.positive()) {
          outcomes_.push_back(rr);
          continue;
        }
        smtp::reply const* d = nullptr;
        if (r->data.size() == 1) d = &r->data.front();
        else if (accepted < r->data.size()) d = &r->data[accepted];
        ++accepted;
        if (d && d->positive()) {
          outcomes_.push_back(std::nullopt);
          last_ = *d;
        } else {
          outcomes_.push_back(d ? *d : smtp::reply(451, {4, 3, 0}, "No reply to the message data"));
        }
      }
    }
    // The connection stays usable after a refusal as well as after success; a transaction that
    // did not reach the message's final reply is closed with RSET first.
    bool clean = !r->mail && !r->data_refused && !r->data.empty() &&
                 std::all_of(r->data.begin(), r->data.end(), [](smtp::reply const& d) { return d.positive(); });
    bool usable = conn.client->ready();
    if (usable && !clean) usable = static_cast<bool>(co_await conn.client->reset());
    if (usable) {
      t_->give_back(key, std::move(conn));
    } else {
      co_await conn.client->quit();
      t_->release(key);
    }
    if (failure_) co_return fail(errc::unavailable);
    co_return result<void>{};
  }

  task<result<std::string>> commit() override {
    std::string out = where_;
    if (!last_.text.empty()) out += " said " + std::to_string(last_.code) + " " + last_.text.substr(0, last_.text.find('\n'));
    co_return out;
  }
  void abort() noexcept override {}
  std::optional<smtp::reply> failure_reply() const override { return failure_; }
  std::vector<std::optional<smtp::reply>> recipient_outcomes() const override { return outcomes_; }

 private:
  std::shared_ptr<remote_target> t_;
  dlv::message_context ctx_;
  address from_;
  std::vector<std::pair<address, smtp::rcpt_params>> rcpts_;
  std::optional<smtp::reply> failure_;
  std::vector<std::optional<smtp::reply>> outcomes_;
  std::string where_;
  smtp::reply last_{0, ""};
};

remote_target::remote_target(executor ex, net::dns::resolver& dns, remote_options opts, log::logger logger)
    : ex_(std::move(ex)), dns_(dns), opts_(std::move(opts)), log_(std::move(logger)) {}

remote_target::~remote_target() = default;

task<result<std::unique_ptr<delivery::delivery>>> remote_target::start(dlv::message_context const& ctx,
                                                                       address const& from) {
  std::unique_ptr<delivery::delivery> d = std::make_unique<remote_delivery>(shared_from_this(), ctx, from);
  co_return d;
}

std::string remote_target::group_key(address const& rcpt) const {
  if (opts_.relay) return {};
  return lower(rcpt.domain);
}

smtp::tls_policy remote_target::policy_for(std::string const& domain) const {
  auto it = opts_.tls_per_domain.find(domain);
  return it == opts_.tls_per_domain.end() ? opts_.tls : it->second;
}

std::pair<bool, std::optional<remote_target::connection>> remote_target::try_acquire(std::string const& key) {
  std::lock_guard lock(mutex_);
  auto& per = open_per_key_[key];
  if (per >= opts_.max_per_destination) return {false, std::nullopt};
  if (open_ < opts_.max_connections) {
    ++open_;
    ++per;
    return {true, std::nullopt};
  }
  // Full: an idle connection to another destination makes room (its slot becomes ours).
  for (auto& [k, list] : idle_) {
    if (k == key || list.empty()) continue;
    auto evicted = std::move(list.front().conn);
    list.erase(list.begin());
    --open_per_key_[k];
    ++per;
    return {true, std::move(evicted)};
  }
  return {false, std::nullopt};
}

void remote_target::release(std::string const& key) {
  std::lock_guard lock(mutex_);
  if (open_ > 0) --open_;
  auto& per = open_per_key_[key];
  if (per > 0) --per;
}

void remote_target::give_back(std::string const& key, connection c) {
  std::lock_guard lock(mutex_);
  idle_[key].push_back({std::move(c), std::chrono::steady_clock::now()});
}

task<void> remote_target::close_idle() {
  std::vector<std::pair<std::string, connection>> all;
  {
    std::lock_guard lock(mutex_);
    for (auto& [k, list] : idle_)
      for (auto& i : list) all.emplace_back(k, std::move(i.conn));
    idle_.clear();
  }
  for (auto& [k, c] : all) {
    co_await c.client->quit();
    release(k);
  }
}

task<remote_target::connect_result> remote_target::connect_host(std::string host, std::uint16_t port,
                                                                smtp::client_options copts) {
  connect_result out;
  std::vector<asio::ip::address> addrs;
  if (auto lit = literal(host)) {
    addrs.push_back(*lit);
  } else {
    std::error_code last;
    if (opts_.ipv6) {
      auto v6 = co_await dns_.aaaa(host);
      if (v6) addrs.insert(addrs.end(), v6->begin(), v6->end());
      else last = v6.error();
    }
    auto v4 = co_await dns_.a(host);
    if (v4) addrs.insert(addrs.end(), v4->begin(), v4->end());
    else last = v4.error();
    if (addrs.empty()) {
      out.error = host + ": " + last.message();
      co_return out;
    }
  }
  for (auto const& a : addrs) {
    asio::ip::tcp::endpoint ep(a, port);
    auto peer = host + "[" + a.to_string() + "]:" + std::to_string(port);
    auto s = co_await net::tcp_stream::connect(ex_, ep, opts_.connect_timeout);
    if (!s) {
      out.error = peer + ": " + s.error().message();
      continue;
    }
    auto client = std::make_unique<smtp::client>(std::move(*s), copts, log_);
    auto h = co_await client->hello();
    if (!h && copts.tls == smtp::tls_policy::opportunistic && client->ext().starttls) {
      // Opportunistic TLS that failed (old ciphers, a broken middlebox): this address once more
      // in plaintext, as Postfix does at security level "may".
      co_await client->quit();
      auto again = co_await net::tcp_stream::connect(ex_, ep, opts_.connect_timeout);
      if (again) {
        auto plain = copts;
        plain.tls = smtp::tls_policy::none;
        client = std::make_unique<smtp::client>(std::move(*again), plain, log_);
        h = co_await client->hello();
      }
    }
    if (!h) {
      out.error = peer + ": " + h.error().message();
      co_await client->quit();
      continue;
    }
    if (*h) {  // refused (greeting, EHLO, STARTTLS, AUTH): the next address may do better
      out.error = peer + " said " + std::to_string((*h)->code) + " " + (*h)->text;
      co_await client->quit();
      continue;
    }
    out.conn = connection{std::move(client), peer, host};
    co_return out;
  }
  co_return out;
}

task<remote_target::connect_result> remote_target::connect(std::string key, bool fresh) {
  connect_result out;
  // An idle connection to the destination, else a free slot for a new one; while every slot
  // is busy, connections coming back idle are taken as soon as they are given back.
  auto deadline = std::chrono::steady_clock::now() + opts_.connection_wait;
  asio::steady_timer timer(ex_);
  for (;;) {
    std::optional<connection> cached;
    bool expired = false;
    if (!fresh) {
      std::lock_guard lock(mutex_);
      auto it = idle_.find(key);
      if (it != idle_.end() && !it->second.empty()) {
        auto i = std::move(it->second.back());
        it->second.pop_back();
        expired = std::chrono::steady_clock::now() - i.since >= opts_.idle_timeout;
        cached = std::move(i.conn);
      }
    }
    if (cached) {
      if (expired || !cached->client->ready()) {  // too old, or closed by the server
        co_await cached->client->quit();
        release(key);
        continue;
      }
      cached->reused = true;
      out.conn = std::move(cached);
      co_return out;
    }
    auto [got, evicted] = try_acquire(key);
    if (evicted) co_await evicted->client->quit();
    if (got) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      out.error = "too many connections";
      co_return out;
    }
    timer.expires_after(std::chrono::milliseconds(20));
    co_await timer.async_wait(use_tuple);
  }
  auto copts = opts_.client;
  copts.helo_name = opts_.helo_name;
  auto context_for = [this](smtp::tls_policy p) {
    return p == smtp::tls_policy::verify ? opts_.tls_verify_context : opts_.tls_context;
  };
  if (opts_.relay) {
    auto const& hop = *opts_.relay;
    copts.tls = hop.tls;
    copts.tls_context = context_for(hop.tls);
    copts.tls_name = hop.host;
    copts.auth = hop.auth;
    copts.lmtp = hop.lmtp;
    out = co_await connect_host(hop.host, hop.port, copts);
    if (!out.conn) release(key);
    co_return out;
  }
  copts.tls = policy_for(key);
  copts.tls_context = context_for(copts.tls);
  if (!key.empty() && key.front() == '[') {  // an address literal: no DNS (RFC 5321 4.1.3)
    copts.tls_name.clear();
    out = co_await connect_host(key, opts_.port, copts);
    if (!out.conn) release(key);
    co_return out;
  }
  auto mx = co_await dns_.mx(key);
  if (!mx) {
    release(key);
    if (mx.error() == net::dns::errc::nxdomain) out.refusal = smtp::reply(550, {5, 1, 2}, "Domain " + key + " does not exist");
    if (mx.error() == net::dns::errc::no_data)  // neither MX nor address (RFC 5321 5.1)
      out.refusal = smtp::reply(550, {5, 4, 4}, "Domain " + key + " has no mail server (no MX or address record)");
    out.error = key + ": " + mx.error().message();
    co_return out;
  }
  if (mx->size() == 1 && mx->front().host.empty()) {  // RFC 7505
    release(key);
    out.refusal = smtp::reply(556, {5, 1, 10}, "Domain " + key + " does not accept mail (null MX)");
    out.error = "null MX";
    co_return out;
  }
  // A backup MX: only hosts better than ourselves (RFC 5321 5.1).
  auto& recs = *mx;
  for (auto const& rec : recs) {
    bool self = std::any_of(opts_.local_names.begin(), opts_.local_names.end(),
                            [&](std::string const& n) { return text::iequals(n, rec.host); });
    if (!self) continue;
    auto mine = rec.preference;
    recs.erase(std::remove_if(recs.begin(), recs.end(), [&](net::dns::mx_record const& r) { return r.preference >= mine; }),
               recs.end());
    break;
  }
  if (recs.empty()) {
    release(key);
    out.refusal = smtp::reply(554, {5, 4, 6}, "Mail for " + key + " loops back to myself (this server is its best MX)");
    out.error = "this server is the best MX host for " + key;
    co_return out;
  }
  // Equal preferences in random order (RFC 5321 5.1).
  static thread_local std::mt19937 rng{std::random_device{}()};
  auto& list = *mx;
  for (std::size_t i = 0; i < list.size();) {
    auto j = i;
    while (j < list.size() && list[j].preference == list[i].preference) ++j;
    std::shuffle(list.begin() + static_cast<std::ptrdiff_t>(i), list.begin() + static_cast<std::ptrdiff_t>(j), rng);
    i = j;
  }
  // A host that cannot be reached or refuses the session (even with 5xx, as Postfix's
  // smtp_skip_5xx_greeting) sends us to the next; when all did, the message waits for a retry.
  std::string errors;
  for (auto const& rec : list) {
    if (rec.host.empty()) continue;
    copts.tls_name = rec.host;
    auto r = co_await connect_host(rec.host, opts_.port, copts);
    if (r.conn) co_return r;
    errors += (errors.empty() ? "" : "; ") + r.error;
  }
  release(key);
  out.error = errors.empty() ? "no usable MX host" : errors;
  co_return out;
}

}  // namespace mailroom::mta
