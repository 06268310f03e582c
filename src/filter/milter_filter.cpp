// The milter client (milter.hpp) as a filter of the chain (checks.hpp).
#include "mailroom/filter/checks.hpp"

namespace mailroom::filter {

namespace {

namespace mt = milter;

// A milter verdict as the chain's; `connection` picks the reply texts of a refused connection.
verdict from_milter(mt::verdict const& v, bool connection) {
  switch (v.act) {
    case mt::action::continue_:
    case mt::action::accept:
    case mt::action::skip: return verdict{};
    case mt::action::discard: {
      verdict d;
      d.what = verdict::kind::discard;
      d.reason = "milter discard";
      return d;
    }
    case mt::action::reject:
      return verdict::reject(connection ? smtp::reply{554, {5, 7, 1}, "Connection rejected by a content filter"}
                                        : smtp::reply{550, {5, 7, 1}, "Command rejected by a content filter"},
                             "milter reject");
    case mt::action::tempfail:
      return verdict::tempfail(smtp::reply{451, {4, 7, 1}, "Content filter says: try again later"}, "milter tempfail");
    case mt::action::reply:
      if (v.smtp && v.smtp->transient()) return verdict::tempfail(*v.smtp, "milter reply");
      return verdict::reject(v.smtp ? *v.smtp : smtp::reply{550, {5, 7, 1}, "Rejected by a content filter"},
                             "milter reply");
    case mt::action::connection_failure:
      return verdict::tempfail(smtp::reply{421, {4, 7, 0}, "Content filter failure, closing connection"},
                               "milter connection failure");
  }
  return verdict{};
}

std::string bracketed(std::optional<address> const& a) { return "<" + (a ? a->to_string() : std::string()) + ">"; }

class milter_state final : public filter_state {
 public:
  milter_state(std::unique_ptr<mt::client> c, std::string const& hostname, log::logger const& log)
      : c_(std::move(c)), log_(log) {
    base_ = {{"j", hostname}, {"{daemon_name}", "mailroom"}};
  }

  task<result<verdict>> on_connect(smtp::session_info const& s) override {
    mt::peer p;
    auto const ip = s.remote.address();
    p.fam = ip.is_v6() ? mt::family::inet6 : mt::family::inet;
    p.address = ip.to_string();
    p.port = s.remote.port();
    auto m = base_;
    m.push_back({"{client_addr}", p.address});
    m.push_back({"_", "[" + p.address + "]"});
    auto const name = "[" + p.address + "]";
    auto v = co_await c_->on_connect(name, p, m);
    if (!v) co_return fail(v.error());
    co_return from_milter(*v, true);
  }

  task<result<verdict>> on_helo(smtp::session_info const&, std::string_view name) override {
    auto const helo = std::string(name);
    auto v = co_await c_->helo(helo, base_);
    if (!v) co_return fail(v.error());
    co_return from_milter(*v, false);
  }

  task<result<verdict>> on_mail(transaction& t) override {
    auto m = base_;
    if (t.session && t.session->auth) {
      m.push_back({"{auth_authen}", t.session->auth->user});
      m.push_back({"{auth_type}", "PLAIN"});
    }
    m.push_back({"{mail_addr}", t.from ? t.from->to_string() : std::string()});
    m.push_back({"i", t.session ? t.session->id : std::string()});
    auto const sender = bracketed(t.from);
    std::vector<std::string> const args;
    auto v = co_await c_->mail(sender, args, m);
    if (!v) co_return fail(v.error());
    co_return from_milter(*v, false);
  }

  task<result<verdict>> on_rcpt(transaction&, address const& rcpt) override {
    auto m = base_;
    m.push_back({"{rcpt_addr}", rcpt.to_string()});
    auto const to = "<" + rcpt.to_string() + ">";
    std::vector<std::string> const args;
    auto v = co_await c_->rcpt(to, args, m);
    if (!v) co_return fail(v.error());
    co_return from_milter(*v, false);
  }

  task<result<verdict>> on_message(transaction& t, std::string_view message) override {
    auto m = base_;
    m.push_back({"i", t.session ? t.session->id : std::string()});
    if (auto d = co_await c_->data(m); !d) co_return fail(d.error());
    else if (d->act != mt::action::continue_ && d->act != mt::action::accept) co_return from_milter(*d, false);
    auto out = co_await mt::send_message(*c_, message, m, m);
    if (!out) co_return fail(out.error());
    verdict v = from_milter(out->final, false);
    if (v.what != verdict::kind::accept || out->changes.empty()) co_return v;
    auto changed = mt::apply(message, out->changes, c_->leading_space());
    if (!changed) co_return fail(changed.error());
    if (changed->headers_changed || changed->body_replaced) v.replace_message = std::move(changed->message);
    if (changed->quarantine) {
      v.what = verdict::kind::quarantine;
      v.reason = "milter quarantine: " + *changed->quarantine;
    }
    if (!changed->added_rcpts.empty() || !changed->deleted_rcpts.empty() || changed->new_sender)
      log_.warning("milter asked to change the envelope; not applied", {{"session", t.session ? t.session->id : ""}});
    co_return v;
  }

 private:
  std::unique_ptr<mt::client> c_;
  log::logger log_;
  mt::macros base_;
};

class milter_filter final : public filter {
 public:
  milter_filter(executor ex, std::string name, std::string spec, std::string hostname, mt::client_options opts,
                log::logger log)
      : ex_(std::move(ex)), name_(std::move(name)), spec_(std::move(spec)), hostname_(std::move(hostname)),
        opts_(opts), log_(log.with_component("milter")) {}
  std::string_view name() const override { return name_; }
  bool wants_message() const override { return true; }
  task<result<std::unique_ptr<filter_state>>> begin(smtp::session_info const&) override {
    auto c = co_await mt::client::connect(ex_, spec_, opts_);
    if (!c) co_return fail(c.error());
    co_return std::make_unique<milter_state>(std::move(*c), hostname_, log_);
  }

 private:
  executor ex_;
  std::string name_, spec_, hostname_;
  mt::client_options opts_;
  log::logger log_;
};

}  // namespace

std::shared_ptr<filter> make_milter_filter(executor ex, std::string name, std::string socket_spec, std::string hostname,
                                           milter::client_options opts, log::logger logger) {
  return std::make_shared<milter_filter>(std::move(ex), std::move(name), std::move(socket_spec), std::move(hostname),
                                         opts, logger);
}

}  // namespace mailroom::filter
