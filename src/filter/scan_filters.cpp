// The content scanners (clamd.hpp, spamd.hpp, rspamd.hpp) as chain filters (checks.hpp).
#include <cstdio>

#include "mailroom/filter/checks.hpp"
#include "mailroom/filter/scanner.hpp"
#include "filter/detail/stateless_filter.hpp"

namespace mailroom::filter {

namespace {

std::string score_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string one_line(std::string_view v, std::size_t max = 200) {
  std::string out;
  for (char c : v.substr(0, max)) out += (static_cast<unsigned char>(c) < 32 || c == 127) ? ' ' : c;
  return out;
}

// Scanners look at the message only.
class scanner_filter : public detail::stateless_filter {
 public:
  bool wants_message() const override { return true; }

 protected:
  // A message over the scanner's size limit passes unscanned (logged); other errors are failures.
  static bool too_large(std::error_code ec) { return ec == make_error_code(scan_errc::message_too_large); }
};

class clamd_filter final : public scanner_filter {
 public:
  clamd_filter(executor ex, clamd_options o, log::logger log) : client_(std::move(ex), o, log), log_(log) {}
  std::string_view name() const override { return "clamd"; }

  task<result<verdict>> message(transaction&, std::string_view m) override {
    auto v = co_await client_.scan(m);
    verdict out;
    if (!v) {
      if (!too_large(v.error())) co_return fail(v.error());
      log_.notice("message too large for clamd; not scanned", {});
      out.add_headers.push_back("X-Virus-Scanned: not scanned (too large) by clamd");
      co_return out;
    }
    if (v->infected)
      co_return verdict::reject(smtp::reply{554, {5, 7, 1}, "Virus found: " + one_line(v->signature)},
                                "virus " + v->signature);
    out.add_headers.push_back("X-Virus-Scanned: clean by clamd");
    co_return out;
  }

 private:
  clamd_client client_;
  log::logger log_;
};

class spamd_filter final : public scanner_filter {
 public:
  spamd_filter(executor ex, spamd_options o, double reject_score, log::logger log)
      : client_(std::move(ex), o, log), reject_score_(reject_score), log_(log) {}
  std::string_view name() const override { return "spamd"; }

  task<result<verdict>> message(transaction&, std::string_view m) override {
    auto v = co_await client_.scan(m, spamd_command::symbols);
    verdict out;
    if (!v) {
      if (!too_large(v.error())) co_return fail(v.error());
      log_.notice("message too large for spamd; not scanned", {});
      co_return out;
    }
    if (v->spam && reject_score_ > 0 && v->score >= reject_score_)
      co_return verdict::reject(smtp::reply{550, {5, 7, 1}, "Message rejected as spam"}, "spam " + score_text(v->score));
    std::string tests;
    for (auto const& s : v->symbols) tests += (tests.empty() ? "" : ",") + one_line(s, 64);
    out.add_headers.push_back(std::string("X-Spam-Flag: ") + (v->spam ? "YES" : "NO"));
    out.add_headers.push_back(std::string("X-Spam-Status: ") + (v->spam ? "Yes" : "No") + ", score=" +
                              score_text(v->score) + " required=" + score_text(v->threshold) +
                              (tests.empty() ? "" : "\r\n\ttests=" + tests.substr(0, 900)));
    co_return out;
  }

 private:
  spamd_client client_;
  double reject_score_;
  log::logger log_;
};

class rspamd_filter final : public scanner_filter {
 public:
  rspamd_filter(executor ex, rspamd_options o, log::logger log) : client_(std::move(ex), o, log), log_(log) {}
  std::string_view name() const override { return "rspamd"; }

  task<result<verdict>> message(transaction& t, std::string_view m) override {
    rspamd_envelope env;
    if (t.session) {
      env.ip = t.session->remote.address();
      env.helo = t.session->helo;
      env.queue_id = t.session->id;
      if (t.session->auth) env.user = t.session->auth->user;
    }
    if (t.from) env.from = t.from->to_string();
    for (auto const& r : t.rcpts) env.rcpts.push_back(r.to_string());
    auto v = co_await client_.scan(m, env);
    verdict out;
    if (!v) {
      if (!too_large(v.error())) co_return fail(v.error());
      log_.notice("message too large for rspamd; not scanned", {});
      co_return out;
    }
    auto const& a = v->action;
    if (a == "reject")
      co_return verdict::reject(
          smtp::reply{550, {5, 7, 1}, v->smtp_message.empty() ? "Message rejected as spam" : one_line(v->smtp_message)},
          "rspamd reject " + score_text(v->score));
    if (a == "soft reject" || a == "greylist")
      co_return verdict::tempfail(smtp::reply{451, {4, 7, 1}, v->smtp_message.empty() ? "Try again later"
                                                                                         : one_line(v->smtp_message)},
                                  "rspamd " + a);
    bool const spam = a == "add header" || a == "rewrite subject";
    out.add_headers.push_back(std::string("X-Spam-Status: ") + (spam ? "Yes" : "No") + ", score=" +
                              score_text(v->score) + " required=" + score_text(v->required_score));
    if (spam) out.add_headers.push_back("X-Spam-Flag: YES");
    for (auto const& h : v->add_headers) out.add_headers.push_back(one_line(h.name, 64) + ": " + one_line(h.value, 900));
    co_return out;
  }

 private:
  rspamd_client client_;
  log::logger log_;
};

}  // namespace

std::shared_ptr<filter> make_clamd_filter(executor ex, clamd_options opts, log::logger logger) {
  return std::make_shared<clamd_filter>(std::move(ex), std::move(opts), logger);
}
std::shared_ptr<filter> make_spamd_filter(executor ex, spamd_options opts, double reject_score, log::logger logger) {
  return std::make_shared<spamd_filter>(std::move(ex), std::move(opts), reject_score, logger);
}
std::shared_ptr<filter> make_rspamd_filter(executor ex, rspamd_options opts, log::logger logger) {
  return std::make_shared<rspamd_filter>(std::move(ex), std::move(opts), logger);
}

}  // namespace mailroom::filter
