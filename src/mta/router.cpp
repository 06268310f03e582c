#include "mailroom/mta/router.hpp"

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::mta {
namespace {

namespace dlv = mailroom::delivery;

std::string_view trim_dot(std::string_view d) {
  while (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return d;
}

bool matches(std::string_view pattern, std::string_view domain) {
  domain = trim_dot(domain);
  if (pattern == "*") return true;
  if (!pattern.empty() && pattern.front() == '.')
    return domain.size() > pattern.size() && text::iequals(domain.substr(domain.size() - pattern.size()), pattern);
  return text::iequals(trim_dot(pattern), domain);
}

// Picks the route on the first recipient, then forwards everything to that route's delivery.
class routed_delivery final : public dlv::delivery {
 public:
  routed_delivery(std::shared_ptr<router const> r, dlv::message_context ctx, address from)
      : router_(std::move(r)), ctx_(std::move(ctx)), from_(std::move(from)) {}

  task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const& params) override {
    auto idx = router_->route_for(to.domain);
    if (!inner_) {
      auto* t = router_->target_at(idx);
      if (!t) co_return smtp::reply(550, {5, 1, 2}, "No route to " + to.domain);
      auto d = co_await t->start(ctx_, from_);
      if (!d) co_return smtp::reply(451, {4, 3, 0}, "Delivery could not start: " + d.error().message());
      inner_ = std::move(*d);
      route_ = idx;
    } else if (idx != route_) {
      // The queue groups by group_key(); a caller that does not gets a clear temporary refusal.
      co_return smtp::reply(452, {4, 5, 3}, "Recipients of another route need their own delivery");
    }
    co_return co_await inner_->add_rcpt(to, params);
  }
  task<result<void>> body(smtp::message_source& src) override {
    if (!inner_) co_return fail(errc::invalid_argument);
    co_return co_await inner_->body(src);
  }
  task<result<std::string>> commit() override {
    if (!inner_) co_return fail(errc::invalid_argument);
    co_return co_await inner_->commit();
  }
  void abort() noexcept override {
    if (inner_) inner_->abort();
  }
  std::optional<smtp::reply> failure_reply() const override { return inner_ ? inner_->failure_reply() : std::nullopt; }
  std::vector<std::optional<smtp::reply>> recipient_outcomes() const override {
    return inner_ ? inner_->recipient_outcomes() : std::vector<std::optional<smtp::reply>>{};
  }

 private:
  std::shared_ptr<router const> router_;
  dlv::message_context ctx_;
  address from_;
  std::unique_ptr<dlv::delivery> inner_;
  std::size_t route_ = 0;
};

class discarding final : public dlv::delivery {
 public:
  discarding(log::logger log, std::string session) : log_(std::move(log)), session_(std::move(session)) {}
  task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
    rcpts_ += (rcpts_.empty() ? "" : ",") + to.to_string();
    co_return std::nullopt;
  }
  task<result<void>> body(smtp::message_source& src) override {
    for (;;) {
      auto piece = co_await src.read();
      if (!piece) co_return fail(piece.error());
      if (piece->empty()) co_return result<void>{};
    }
  }
  task<result<std::string>> commit() override {
    log_.info("discarded", {{"session", session_}, {"to", rcpts_}});
    co_return std::string("discarded");
  }
  void abort() noexcept override {}

 private:
  log::logger log_;
  std::string session_;
  std::string rcpts_;
};

}  // namespace

router::router(std::vector<route> routes, std::shared_ptr<dlv::delivery_target> fallback)
    : routes_(std::move(routes)), fallback_(std::move(fallback)) {}

std::size_t router::route_for(std::string_view domain) const {
  for (std::size_t i = 0; i < routes_.size(); ++i)
    if (matches(routes_[i].pattern, domain)) return i;
  return routes_.size();
}

dlv::delivery_target* router::target_at(std::size_t index) const {
  return index < routes_.size() ? routes_[index].target.get() : fallback_.get();
}

std::string router::group_key(address const& rcpt) const {
  auto idx = route_for(rcpt.domain);
  auto* t = target_at(idx);
  return std::to_string(idx) + '\x1f' + (t ? t->group_key(rcpt) : std::string());
}

std::size_t router::max_recipients() const {
  std::size_t out = fallback_ ? fallback_->max_recipients() : 0;
  for (auto const& r : routes_) {
    auto m = r.target ? r.target->max_recipients() : 0;
    if (m && (!out || m < out)) out = m;
  }
  return out;
}

task<result<std::unique_ptr<dlv::delivery>>> router::start(dlv::message_context const& ctx, address const& from) {
  std::unique_ptr<dlv::delivery> d = std::make_unique<routed_delivery>(shared_from_this(), ctx, from);
  co_return d;
}

task<result<std::unique_ptr<dlv::delivery>>> discard_target::start(dlv::message_context const& ctx,
                                                                        address const&) {
  std::unique_ptr<dlv::delivery> d = std::make_unique<discarding>(log_, ctx.session_id);
  co_return d;
}

}  // namespace mailroom::mta
