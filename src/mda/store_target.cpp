#include "mailroom/mda/store_target.hpp"

#include <chrono>
#include <random>
#include <set>

#include "mailroom/core/text.hpp"
#include "mailroom/mta/inbound.hpp"
#include "mailroom/sieve/interpreter.hpp"

namespace mailroom::mda {
namespace {

constexpr int max_alias_depth = 8;

bool usable_local(std::string_view local) {
  if (local.empty() || local.size() > 64 || local.front() == '.') return false;
  for (unsigned char c : local)
    if (c <= ' ' || c == '/' || c == '\\' || c == 0x7f) return false;
  return text::is_valid_utf8(local);
}

void expand(alias_map const* map, std::string local, std::string domain, int depth, std::set<std::string>& seen,
            std::vector<std::string>& out) {
  auto key = text::to_lower(local) + "@" + text::to_lower(domain);
  auto const* targets = map ? map->find(local, domain) : nullptr;
  if (!targets || depth >= max_alias_depth || !seen.insert(key).second) {
    auto name = text::to_lower(local);
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
    return;
  }
  for (auto const& t : *targets) {
    auto at = t.rfind('@');
    if (at == std::string::npos) expand(map, t, domain, depth + 1, seen, out);
    else expand(map, t.substr(0, at), t.substr(at + 1), depth + 1, seen, out);
  }
}

smtp::reply unknown(address const& rcpt) { return {550, {5, 1, 1}, "<" + rcpt.to_string() + ">: User unknown"}; }

}  // namespace

store_target::store_target(store_target_options opts, log::logger logger)
    : opts_(std::move(opts)), log_(logger.with_component("mda")) {}

void store_target::set_aliases(std::shared_ptr<alias_map const> aliases) {
  std::lock_guard lock(mutex_);
  aliases_ = std::move(aliases);
}

std::shared_ptr<alias_map const> store_target::aliases() const {
  std::lock_guard lock(mutex_);
  return aliases_;
}

void store_target::set_outgoing(std::shared_ptr<delivery::delivery_target> t) {
  std::lock_guard lock(mutex_);
  outgoing_ = std::move(t);
}

std::shared_ptr<delivery::delivery_target> store_target::outgoing() const {
  std::lock_guard lock(mutex_);
  return outgoing_;
}

expected<std::shared_ptr<sieve::script const>, sieve::diagnostic> store_target::compiled(std::string const& account,
                                                                                       std::string const& text) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = scripts_.find(account); it != scripts_.end() && it->second.first == text) return it->second.second;
  }
  auto s = sieve::compile(text);
  if (!s) return unexpected(s.error());
  std::lock_guard lock(mutex_);
  if (scripts_.size() > 10000) scripts_.clear();  // bounded; recompiling is cheap
  scripts_[account] = {text, *s};
  return *s;
}

sieve::vacation_store& store_target::vacation_store(std::string const& account) {
  std::lock_guard lock(mutex_);
  auto& v = vacation_[account];
  if (!v) v = opts_.vacation_store ? opts_.vacation_store(account) : nullptr;
  if (!v) v = std::make_unique<sieve::memory_vacation_store>();
  return *v;
}

std::vector<std::string> store_target::accounts_for(address const& rcpt) const {
  std::string_view local = rcpt.local;
  if (opts_.extension_separator) {
    auto sep = local.find(opts_.extension_separator);
    if (sep != std::string_view::npos && sep > 0) local = local.substr(0, sep);
  }
  if (!usable_local(local)) return {};
  auto map = aliases();
  std::set<std::string> seen;
  std::vector<std::string> out;
  expand(map.get(), std::string(local), rcpt.domain, 0, seen, out);
  std::erase_if(out, [](std::string const& n) { return !usable_local(n); });
  return out;
}

task<expected<std::vector<store_target::resolved>, smtp::reply>> store_target::resolve(address const& rcpt,
                                                                                    std::uint64_t size_hint) {
  auto names = accounts_for(rcpt);
  if (names.empty()) co_return unexpected(smtp::reply{550, {5, 1, 3}, "Bad destination mailbox address syntax"});
  std::vector<resolved> out;
  bool tried_catch_all = false;
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto acct = co_await opts_.store->open_account(names[i]);
    if (!acct && acct.error() == store::errc::no_such_account) {
      auto map = aliases();
      auto const* all = map ? map->catch_all(rcpt.domain) : nullptr;
      if (all && !tried_catch_all) {
        tried_catch_all = true;  // the catch-all's own targets must exist
        for (auto const& t : *all) {
          auto name = text::to_lower(t.substr(0, t.rfind('@')));
          if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
        }
        continue;
      }
      co_return unexpected(unknown(rcpt));
    }
    if (!acct) {
      log_.warning("cannot open account", {{"account", names[i]}, {"error", acct.error().message()}});
      co_return unexpected(smtp::reply{451, {4, 3, 0}, "Mailbox not available, try again later"});
    }
    auto q = co_await (*acct)->quota();
    if (q && q->would_exceed(size_hint)) {
      if (opts_.over_quota_tempfail)
        co_return unexpected(smtp::reply{452, {4, 2, 2}, "<" + rcpt.to_string() + ">: Mailbox full, try again later"});
      co_return unexpected(smtp::reply{552, {5, 2, 2}, "<" + rcpt.to_string() + ">: Mailbox full"});
    }
    out.push_back({names[i], std::move(*acct)});
  }
  if (out.empty()) co_return unexpected(unknown(rcpt));
  co_return out;
}

task<std::optional<smtp::reply>> store_target::check_recipient(address const& rcpt, std::uint64_t size_hint) {
  auto r = co_await resolve(rcpt, size_hint);
  if (!r) co_return r.error();
  co_return std::nullopt;
}

namespace {

namespace dlv = mailroom::delivery;  // inside store_delivery, "delivery" names the base class

// A message Sieve sends on (redirect, vacation): envelope and content.
struct outgoing_message {
  address from;  ///< empty: the null sender
  address to;
  std::string content;
};

std::string crlf(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return out;
}

std::string header_safe(std::string_view v) {
  std::string out;
  for (char c : v) out += (c == '\r' || c == '\n') ? ' ' : c;
  return out;
}

// RFC 5230 / RFC 3834: the reply to send for a vacation action.
std::string vacation_reply(sieve::vacation_action const& v, std::string const& recipient, std::string const& hostname) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto const now = std::chrono::system_clock::now();
  std::string m = "From: " + header_safe(v.from.empty() ? "<" + recipient + ">" : v.from) + "\r\n";
  m += "To: <" + header_safe(v.to) + ">\r\n";
  m += "Subject: " + header_safe(v.subject) + "\r\n";
  m += "Date: " + mta::rfc5322_date(now) + "\r\n";
  m += "Message-ID: <" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()) +
       "." + std::to_string(rng()) + "@" + hostname + ">\r\n";
  if (!v.in_reply_to.empty()) m += "In-Reply-To: " + header_safe(v.in_reply_to) + "\r\n";
  if (!v.references.empty()) m += "References: " + header_safe(v.references) + "\r\n";
  m += "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n";
  if (v.mime) return m + crlf(v.reason);  // the reason is a MIME entity with its own header
  return m + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + crlf(v.reason);
}

class store_delivery final : public delivery::delivery {
 public:
  store_delivery(std::shared_ptr<store_target> target, address from, std::uint64_t size_hint)
      : target_(std::move(target)), from_(std::move(from)), size_hint_(size_hint) {}

  task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
    auto r = co_await target_->resolve(to, size_hint_);
    if (!r) co_return r.error();
    for (auto& acct : *r) {
      bool dup = false;
      for (auto const& c : copies_) dup = dup || c.name == acct.name;
      if (!dup) copies_.push_back({acct.name, to.to_string(), outcomes_.size(), std::move(acct.account), {}});
    }
    outcomes_.emplace_back();
    co_return std::nullopt;
  }

  task<result<void>> body(smtp::message_source& src) override {
    if (copies_.empty()) co_return fail(errc::invalid_argument);
    std::vector<std::optional<std::string>> scripts(copies_.size());
    bool any_script = false;
    if (target_->options().sieve_script)
      for (std::size_t i = 0; i < copies_.size(); ++i) {
        scripts[i] = target_->options().sieve_script(copies_[i].name);
        any_script = any_script || scripts[i].has_value();
      }
    if (any_script) co_return co_await filed(src, scripts);
    for (auto& c : copies_) {
      auto const mailbox = target_->options().mailbox;
      if (auto r = co_await open_copy(c, mailbox, store::flag_set{}, false); !r) co_return fail(r.error());
    }
    for (;;) {
      auto piece = co_await src.read();
      if (!piece) co_return fail(piece.error());
      if (piece->empty()) break;
      for (auto& c : copies_)
        for (auto& ap : c.appenders)
          if (auto ok = ap->write(*piece); !ok) co_return fail(ok.error());
    }
    co_return result<void>{};
  }

  task<result<std::string>> commit() override {
    std::string names;
    for (auto& c : copies_) {
      for (auto& ap : c.appenders) {
        auto r = co_await ap->commit();
        if (!r) {
          target_->logger().warning("local delivery failed", {{"account", c.name}, {"error", r.error().message()}});
          co_return fail(r.error());
        }
      }
      if (!names.empty()) names += ' ';
      names += c.name;
    }
    // Only now, with every copy durable: what Sieve sends on. A failure here loses that message
    // (logged), never the delivered copies.
    if (auto out = target_->outgoing())
      for (auto const& m : outgoing_) {
        if (auto r = co_await send(*out, m); !r)
          target_->logger().warning("Sieve could not send a message", {{"to", m.to.to_string()}, {"error", r.error().message()}});
      }
    else if (!outgoing_.empty())
      target_->logger().warning("Sieve redirect/vacation dropped: no outgoing target", {});
    outgoing_.clear();
    co_return names;
  }

  std::vector<std::optional<smtp::reply>> recipient_outcomes() const override {
    for (auto const& o : outcomes_)
      if (o) return outcomes_;
    return {};
  }

  void abort() noexcept override {
    for (auto& c : copies_)
      for (auto& ap : c.appenders) ap->abort();
    outgoing_.clear();
  }

 private:
  struct copy {
    std::string name;
    std::string delivered_to;
    std::size_t rcpt = 0;  ///< index into outcomes_
    std::shared_ptr<store::account> account;
    std::vector<std::unique_ptr<store::appender>> appenders;
  };

  // Starts an appender for one copy into `mailbox` (INBOX when it does not exist, unless
  // `create` makes it) and writes our trace fields.
  task<result<void>> open_copy(copy& c, std::string const& mailbox, store::flag_set const& flags, bool create) {
    store::append_options opts;
    opts.assign_uid = false;  // numbered when a reader looks, as deliver(1) does
    opts.flags = flags;
    auto ap = co_await c.account->append(mailbox, opts);
    if (!ap && ap.error() == store::errc::no_such_mailbox && create) {
      if (auto made = co_await c.account->create(mailbox); made) ap = co_await c.account->append(mailbox, opts);
    }
    if (!ap && ap.error() == store::errc::no_such_mailbox && mailbox != "INBOX") ap = co_await c.account->append("INBOX", opts);
    if (!ap) co_return fail(ap.error());
    std::string const head = "Return-Path: <" + from_.to_string() + ">\r\nDelivered-To: " + c.delivered_to + "\r\n";
    if (auto ok = (*ap)->write(head); !ok) co_return fail(ok.error());
    c.appenders.push_back(std::move(*ap));
    co_return result<void>{};
  }

  // The message held in memory and each copy filed as its script says.
  task<result<void>> filed(smtp::message_source& src, std::vector<std::optional<std::string>> const& scripts) {
    auto all = co_await smtp::read_all(src);
    if (!all) co_return fail(all.error());
    std::string const& message = *all;
    auto const& log = target_->logger();
    for (std::size_t i = 0; i < copies_.size(); ++i) {
      auto& c = copies_[i];
      std::vector<sieve::action> actions;
      if (!scripts[i]) {
        actions.push_back(sieve::keep_action{{}, true});
      } else if (auto s = target_->compiled(c.name, *scripts[i]); !s) {
        log.warning("Sieve script does not compile; kept in INBOX", {{"account", c.name}, {"error", s.error().text()}});
        actions.push_back(sieve::keep_action{{}, true});
      } else {
        std::set<std::string> mailboxes;
        if (auto l = co_await c.account->list(); l)
          for (auto const& m : *l) mailboxes.insert(m.name);
        sieve::environment env;
        env.message = message;
        env.envelope_from = from_.to_string();
        env.envelope_to = c.delivered_to;
        env.user_addresses = {c.delivered_to};
        env.now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        env.mailbox_exists = [&mailboxes](std::string_view name) {
          return name == "INBOX" || mailboxes.count(std::string(name)) > 0;
        };
        env.vacation = &target_->vacation_store(c.name);
        auto run = sieve::run(**s, env);
        if (run.error)
          log.warning("Sieve script failed; kept in INBOX", {{"account", c.name}, {"error", run.error->text()}});
        actions = std::move(run.actions);
      }
      for (auto const& a : actions) {
        log.info("sieve", {{"account", c.name}, {"action", sieve::describe(a)}});
        if (auto r = co_await act(c, a, message); !r) co_return fail(r.error());
      }
    }
    co_return result<void>{};
  }

  task<result<void>> act(copy& c, sieve::action const& a, std::string const& message) {
    auto flags_of = [](std::vector<std::string> const& names) {
      store::flag_set f;
      for (auto const& n : names) f.add_imap(n);
      return f;
    };
    if (auto const* k = std::get_if<sieve::keep_action>(&a)) {
      auto const mailbox = target_->options().mailbox;
      auto const flags = flags_of(k->flags);
      if (auto r = co_await open_copy(c, mailbox, flags, false); !r) co_return fail(r.error());
      if (auto ok = c.appenders.back()->write(message); !ok) co_return fail(ok.error());
    } else if (auto const* f = std::get_if<sieve::fileinto_action>(&a)) {
      auto const flags = flags_of(f->flags);
      if (auto r = co_await open_copy(c, f->mailbox, flags, f->create); !r) co_return fail(r.error());
      if (auto ok = c.appenders.back()->write(message); !ok) co_return fail(ok.error());
    } else if (auto const* rd = std::get_if<sieve::redirect_action>(&a)) {
      path_options po;
      po.allow_utf8 = true;
      auto to = parse_path("<" + rd->address + ">", po);
      if (to) outgoing_.push_back({from_, *to, "Delivered-To: " + c.delivered_to + "\r\n" + message});
    } else if (auto const* rj = std::get_if<sieve::reject_action>(&a)) {
      outcomes_[c.rcpt] = smtp::reply{550, {5, 7, 1}, header_safe(rj->reason.empty() ? "Rejected" : rj->reason)};
    } else if (auto const* v = std::get_if<sieve::vacation_action>(&a)) {
      path_options po;
      po.allow_utf8 = true;
      auto to = parse_path("<" + v->to + ">", po);
      if (to) outgoing_.push_back({address{}, *to, vacation_reply(*v, c.delivered_to, target_->options().hostname)});
    }
    co_return result<void>{};
  }

  task<result<void>> send(dlv::delivery_target& out, outgoing_message const& m) {
    dlv::message_context ctx;
    ctx.session_id = "sieve";
    ctx.protocol = "LOCAL";
    auto d = co_await out.start(ctx, m.from);
    if (!d) co_return fail(d.error());
    smtp::rcpt_params const params{};
    if (auto refused = co_await (*d)->add_rcpt(m.to, params); refused) co_return fail(errc::invalid_argument);
    smtp::memory_source body(m.content);
    if (auto r = co_await (*d)->body(body); !r) co_return fail(r.error());
    auto id = co_await (*d)->commit();
    if (!id) co_return fail(id.error());
    co_return result<void>{};
  }

  std::shared_ptr<store_target> target_;
  address from_;
  std::uint64_t size_hint_;
  std::vector<copy> copies_;
  std::vector<std::optional<smtp::reply>> outcomes_;  ///< one per accepted recipient
  std::vector<outgoing_message> outgoing_;
};

}  // namespace

task<result<std::unique_ptr<delivery::delivery>>> store_target::start(delivery::message_context const& ctx,
                                                                      address const& from) {
  co_return std::make_unique<store_delivery>(shared_from_this(), from, ctx.params.size.value_or(0));
}

}  // namespace mailroom::mda
