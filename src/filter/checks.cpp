#include "mailroom/filter/checks.hpp"

#include <chrono>

#include "mailroom/filter/dmarc.hpp"
#include "filter/detail/stateless_filter.hpp"

namespace mailroom::filter {

namespace {

bool authenticated(smtp::session_info const* s) { return s && s->auth.has_value(); }

std::string address_text(std::optional<address> const& a) { return a ? a->to_string() : std::string(); }

using check_base = detail::stateless_filter;

// --- SPF ---------------------------------------------------------------------------------------

class spf_filter final : public check_base {
 public:
  spf_filter(dns& d, spf_filter_options o) : dns_(d), opts_(std::move(o)) {}
  std::string_view name() const override { return "spf"; }

  task<result<verdict>> mail(transaction& t) override {
    if (authenticated(t.session)) co_return verdict{};
    auto const ip = t.session->remote.address();
    auto const from = address_text(t.from);
    auto const helo = t.session->helo;
    spf::outcome const o = co_await spf::check_mail_from(dns_, ip, from, helo, opts_.spf);
    auth_result r;
    r.method = "spf";
    r.result = std::string(spf::to_string(o.result));
    r.comment = o.problem;
    if (o.identity == spf::identity::mailfrom) r.properties.push_back({"smtp.mailfrom", o.sender});
    else r.properties.push_back({"smtp.helo", o.helo});
    t.results.push_back(std::move(r));
    verdict v;
    v.add_headers.push_back("Received-SPF: " + spf::received_spf(o, opts_.spf.receiver));
    if (opts_.reject_fail && o.result == spf::status::fail) {
      std::string text = "SPF validation failed for " + o.domain;
      if (!o.explanation.empty()) text += ": " + o.explanation;
      v.what = verdict::kind::reject;
      v.reply = smtp::reply{550, {5, 7, 23}, text};
      v.reason = "spf fail";
    }
    co_return v;
  }

 private:
  dns& dns_;
  spf_filter_options opts_;
};

// --- DKIM verification ----------------------------------------------------------------------------

class dkim_verify_filter final : public check_base {
 public:
  explicit dkim_verify_filter(dns& d) : dns_(d) {}
  std::string_view name() const override { return "dkim"; }
  bool wants_message() const override { return true; }

  task<result<verdict>> message(transaction& t, std::string_view m) override {
    if (authenticated(t.session)) co_return verdict{};
    dkim::verifier v;
    v.feed(m);
    v.finish();
    if (auto ec = v.error(); ec) {
      auth_result r{"dkim", "permerror", ec.message(), {}, {}};
      t.results.push_back(std::move(r));
      co_return verdict{};
    }
    auto const& sigs = v.signatures();
    if (sigs.empty()) {
      auth_result r{"dkim", "none", "", {}, {}};
      t.results.push_back(std::move(r));
    }
    for (std::size_t i = 0; i < sigs.size(); ++i) {
      dkim::key_answer key;
      if (!sigs[i].key_name.empty()) {
        std::string const name = sigs[i].key_name;
        auto txt = co_await dns_.txt(name);
        key = dkim::key_answer::from_lookup(txt);
      }
      auto const ver = v.verify(i, key);
      auth_result r;
      r.method = "dkim";
      r.result = std::string(dkim::to_string(ver.status));
      if (ver.status != dkim::status::pass) r.reason = ver.reason;
      if (!ver.domain.empty()) {
        r.properties.push_back({"header.d", ver.domain});
        r.properties.push_back({"header.s", ver.selector});
        r.properties.push_back({"header.b", ver.b_text.substr(0, 8)});
      }
      t.results.push_back(std::move(r));
    }
    co_return verdict{};
  }

 private:
  dns& dns_;
};

// --- DMARC -------------------------------------------------------------------------------------

std::string property(auth_result const& r, std::string_view name) {
  for (auto const& [k, v] : r.properties)
    if (k == name) return v;
  return {};
}

class dmarc_filter final : public check_base {
 public:
  dmarc_filter(dns& d, dmarc_filter_options o) : dns_(d), opts_(std::move(o)) {}
  std::string_view name() const override { return "dmarc"; }
  bool wants_message() const override { return true; }

  task<result<verdict>> message(transaction& t, std::string_view m) override {
    if (authenticated(t.session) || !opts_.psl) co_return verdict{};
    dmarc::auth_results ar;
    for (auto const& r : t.results) {
      if (r.method == "spf") {
        auto id = property(r, "smtp.mailfrom");
        if (id.empty()) id = property(r, "smtp.helo");
        ar.spf_domain = id.substr(id.rfind('@') + 1);  // npos + 1 == 0: a bare domain
        ar.spf_pass = r.result == "pass";
        ar.spf_result = r.result;
        ar.spf_scope = property(r, "smtp.mailfrom").empty() ? "helo" : "mfrom";
      } else if (r.method == "dkim" && !property(r, "header.d").empty()) {
        dmarc::dkim_signature sig;
        sig.domain = property(r, "header.d");
        sig.selector = property(r, "header.s");
        sig.pass = r.result == "pass";
        sig.result = r.result;
        ar.dkim.push_back(std::move(sig));
      }
    }
    auto from = header_values(m, "From");
    dns* d = &dns_;
    dmarc::txt_lookup lookup = [d](std::string const& name) -> task<result<std::vector<std::string>>> {
      co_return co_await d->txt(name);
    };
    dmarc::evaluation const e = co_await dmarc::check(std::move(from), std::move(ar), *opts_.psl, std::move(lookup));
    auth_result r;
    r.method = "dmarc";
    r.result = std::string(dmarc::to_string(e.result));
    if (e.rec)
      r.comment = "p=" + std::string(dmarc::to_string(e.requested)) + " dis=" + std::string(dmarc::to_string(e.disposition));
    if (!e.from_domain.empty()) r.properties.push_back({"header.from", e.from_domain});
    t.results.push_back(std::move(r));
    verdict v;
    if (opts_.enforce && e.result == dmarc::outcome::fail) {
      if (e.disposition == dmarc::policy::reject) {
        v.what = verdict::kind::reject;
        v.reply = smtp::reply{550, {5, 7, 1}, "Rejected by the DMARC policy of " + e.from_domain};
        v.reason = "dmarc reject";
      } else if (e.disposition == dmarc::policy::quarantine) {
        v.what = verdict::kind::quarantine;
        v.reason = "dmarc quarantine";
      }
    }
    co_return v;
  }

 private:
  dns& dns_;
  dmarc_filter_options opts_;
};

// --- DKIM signing ------------------------------------------------------------------------------

class dkim_sign_filter final : public check_base {
 public:
  explicit dkim_sign_filter(std::shared_ptr<dkim::signing_table const> keys) : keys_(std::move(keys)) {}
  std::string_view name() const override { return "dkim_sign"; }
  bool wants_message() const override { return true; }

  task<result<verdict>> message(transaction& t, std::string_view m) override {
    if (!authenticated(t.session)) co_return verdict{};
    auto from = header_values(m, "From");
    std::vector<std::string_view> views(from.begin(), from.end());
    auto domain = dmarc::from_domain(views);
    if (!domain) co_return verdict{};  // no single From: domain: nothing to sign for
    auto const* key = keys_->find(*domain);
    if (!key) co_return verdict{};
    dkim::sign_options so;
    so.domain = key->domain;
    so.selector = key->selector;
    so.timestamp = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    dkim::signer s(so, key->key);
    s.feed(m);
    auto header = s.finish();
    if (!header) co_return fail(header.error());
    verdict v;
    std::string field = std::move(*header);
    while (!field.empty() && (field.back() == '\n' || field.back() == '\r')) field.pop_back();
    v.add_headers.push_back(std::move(field));
    co_return v;
  }

 private:
  std::shared_ptr<dkim::signing_table const> keys_;
};

// --- DNSBL -------------------------------------------------------------------------------------

class dnsbl_filter final : public check_base {
 public:
  dnsbl_filter(dns& d, dnsbl_filter_options o) : dns_(d), opts_(std::move(o)) {}
  std::string_view name() const override { return "dnsbl"; }

  task<result<verdict>> connect(smtp::session_info const& s) override {
    dns* d = &dns_;
    dnsbl::a_lookup a = [d](std::string const& name) -> task<result<std::vector<asio::ip::address>>> {
      co_return co_await d->a(name);
    };
    dnsbl::txt_lookup txt = [d](std::string const& name) -> task<result<std::vector<std::string>>> {
      co_return co_await d->txt(name);
    };
    dnsbl::check_options co;
    co.threshold = opts_.threshold;
    auto const ip = s.remote.address();
    dnsbl::report const rep = co_await dnsbl::check(ip, opts_.sites, std::move(a), std::move(txt), co);
    if (!rep.listed) co_return verdict{};
    std::string text = "Service unavailable; client [" + ip.to_string() + "] blocked";
    if (auto const* site = rep.first_listed()) {
      text += " using " + site->zone;
      if (!site->reason.empty()) text += ": " + site->reason;
    }
    co_return verdict::reject(smtp::reply{554, {5, 7, 1}, text}, "dnsbl");
  }

 private:
  dns& dns_;
  dnsbl_filter_options opts_;
};

// --- greylisting and rate limits ----------------------------------------------------------------

class greylist_filter final : public check_base {
 public:
  explicit greylist_filter(std::shared_ptr<greylist> g) : g_(std::move(g)) {}
  std::string_view name() const override { return "greylist"; }

  task<result<verdict>> rcpt(transaction& t, address const& to) override {
    if (authenticated(t.session)) co_return verdict{};
    auto const d = g_->check(t.session->remote.address(), address_text(t.from), to.to_string());
    if (d.act == greylist::action::pass) co_return verdict{};
    co_return verdict::tempfail(d.reply(), "greylisted");
  }

 private:
  std::shared_ptr<greylist> g_;
};

class rate_limit_filter final : public check_base {
 public:
  rate_limit_filter(std::shared_ptr<rate_limiter> per_client, std::shared_ptr<rate_limiter> per_sender)
      : per_client_(std::move(per_client)), per_sender_(std::move(per_sender)) {}
  std::string_view name() const override { return "rate_limit"; }

  task<result<verdict>> mail(transaction& t) override {
    if (per_client_) {
      auto const d = per_client_->hit(client_network(t.session->remote.address()));
      if (!d.allowed) co_return refuse(d, "client");
    }
    if (per_sender_) {
      // Authenticated senders are counted by login, others by envelope sender.
      auto const key = authenticated(t.session) ? "auth:" + t.session->auth->user : "from:" + address_text(t.from);
      auto const d = per_sender_->hit(key);
      if (!d.allowed) co_return refuse(d, "sender");
    }
    co_return verdict{};
  }

 private:
  static verdict refuse(rate_limiter::decision const& d, std::string const& who) {
    auto const secs = std::chrono::duration_cast<std::chrono::seconds>(d.retry_after).count() + 1;
    return verdict::tempfail(smtp::reply{450, {4, 7, 1}, "Too much mail from this " + who + ", try again in " +
                                                             std::to_string(secs) + " seconds"},
                             "rate limit (" + who + ")");
  }
  std::shared_ptr<rate_limiter> per_client_, per_sender_;
};

}  // namespace

std::shared_ptr<filter> make_spf_filter(dns& d, spf_filter_options opts) {
  return std::make_shared<spf_filter>(d, std::move(opts));
}
std::shared_ptr<filter> make_dkim_verify_filter(dns& d) { return std::make_shared<dkim_verify_filter>(d); }
std::shared_ptr<filter> make_dmarc_filter(dns& d, dmarc_filter_options opts) {
  return std::make_shared<dmarc_filter>(d, std::move(opts));
}
std::shared_ptr<filter> make_dkim_sign_filter(std::shared_ptr<dkim::signing_table const> keys) {
  return std::make_shared<dkim_sign_filter>(std::move(keys));
}
std::shared_ptr<filter> make_dnsbl_filter(dns& d, dnsbl_filter_options opts) {
  return std::make_shared<dnsbl_filter>(d, std::move(opts));
}
std::shared_ptr<filter> make_greylist_filter(std::shared_ptr<greylist> g) {
  return std::make_shared<greylist_filter>(std::move(g));
}
std::shared_ptr<filter> make_rate_limit_filter(std::shared_ptr<rate_limiter> per_client,
                                               std::shared_ptr<rate_limiter> per_sender) {
  return std::make_shared<rate_limit_filter>(std::move(per_client), std::move(per_sender));
}

}  // namespace mailroom::filter
