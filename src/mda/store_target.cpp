#include "mailroom/mda/store_target.hpp"

#include <set>

#include "mailroom/core/text.hpp"

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
      if (!dup) copies_.push_back({acct.name, to.to_string(), std::move(acct.account), nullptr});
    }
    co_return std::nullopt;
  }

  task<result<void>> body(smtp::message_source& src) override {
    if (copies_.empty()) co_return fail(errc::invalid_argument);
    store::append_options opts;
    opts.assign_uid = false;  // numbered when a reader looks, as deliver(1) does
    for (auto& c : copies_) {
      auto ap = co_await c.account->append(target_->options().mailbox, opts);
      if (!ap && ap.error() == store::errc::no_such_mailbox && target_->options().mailbox != "INBOX")
        ap = co_await c.account->append("INBOX", opts);
      if (!ap) co_return fail(ap.error());
      c.appender = std::move(*ap);
      std::string head = "Return-Path: <" + from_.to_string() + ">\r\nDelivered-To: " + c.delivered_to + "\r\n";
      if (auto ok = c.appender->write(head); !ok) co_return fail(ok.error());
    }
    for (;;) {
      auto piece = co_await src.read();
      if (!piece) co_return fail(piece.error());
      if (piece->empty()) break;
      for (auto& c : copies_)
        if (auto ok = c.appender->write(*piece); !ok) co_return fail(ok.error());
    }
    co_return result<void>{};
  }

  task<result<std::string>> commit() override {
    std::string names;
    for (auto& c : copies_) {
      if (!c.appender) co_return fail(errc::invalid_argument);
      auto r = co_await c.appender->commit();
      if (!r) {
        target_->logger().warning("local delivery failed", {{"account", c.name}, {"error", r.error().message()}});
        co_return fail(r.error());
      }
      if (!names.empty()) names += ' ';
      names += c.name;
    }
    co_return names;
  }

  void abort() noexcept override {
    for (auto& c : copies_)
      if (c.appender) c.appender->abort();
  }

 private:
  struct copy {
    std::string name;
    std::string delivered_to;
    std::shared_ptr<store::account> account;
    std::unique_ptr<store::appender> appender;
  };
  std::shared_ptr<store_target> target_;
  address from_;
  std::uint64_t size_hint_;
  std::vector<copy> copies_;
};

}  // namespace

task<result<std::unique_ptr<delivery::delivery>>> store_target::start(delivery::message_context const& ctx,
                                                                      address const& from) {
  co_return std::make_unique<store_delivery>(shared_from_this(), from, ctx.params.size.value_or(0));
}

}  // namespace mailroom::mda
