#include "mailroom/filter/filter.hpp"

#include "mailroom/core/text.hpp"
#include "mailroom/mime/message.hpp"

#include <algorithm>
#include <cctype>

namespace mailroom::filter {

namespace {

enum phase { connect_phase, helo_phase, mail_phase, rcpt_phase };

bool plain_value(std::string_view v) {
  if (v.empty()) return false;
  return std::all_of(v.begin(), v.end(), [](unsigned char c) {
    // RFC 2045 token characters, plus '@' and '.' for the address and domain forms RFC 8601 allows.
    return c > 32 && c < 127 && std::string_view("()<>,;:\\\"/[]?=").find(static_cast<char>(c)) == std::string_view::npos;
  });
}

std::string quoted(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '\r' || c == '\n') continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}


smtp::reply default_reply(verdict::kind k, int phase) {
  if (k == verdict::kind::tempfail) return {451, {4, 7, 1}, "Try again later"};
  if (phase == connect_phase) return {554, {5, 7, 1}, "Connection refused by policy"};
  return {550, {5, 7, 1}, "Rejected by policy"};
}

smtp::reply failure_reply(int phase) {
  if (phase == connect_phase) return {421, {4, 7, 0}, "Filter unavailable, try again later"};
  return {451, {4, 7, 0}, "Filter unavailable, try again later"};
}

char const* phase_name(int phase) {
  switch (phase) {
    case connect_phase: return "connect";
    case helo_phase: return "helo";
    case mail_phase: return "mail";
    case rcpt_phase: return "rcpt";
  }
  return "message";
}

}  // namespace

std::string format(auth_result const& r) {
  std::string out = r.method + "=" + r.result;
  if (!r.comment.empty()) {
    out += " (";
    for (char c : r.comment) out += (c == '(' || c == ')' || c == '\r' || c == '\n') ? ' ' : c;
    out += ")";
  }
  if (!r.reason.empty()) out += " reason=" + quoted(r.reason);
  for (auto const& [k, v] : r.properties) out += " " + k + "=" + (plain_value(v) ? v : quoted(v));
  return out;
}

std::string authentication_results_header(std::string_view authserv_id, std::span<auth_result const> results) {
  std::string h = "Authentication-Results: " + std::string(authserv_id) + ";";
  if (results.empty()) return h + " none\r\n";
  for (std::size_t i = 0; i < results.size(); ++i) h += "\r\n\t" + format(results[i]) + (i + 1 < results.size() ? ";" : "");
  return h + "\r\n";
}

namespace {
verdict refusal(verdict::kind k, smtp::reply r, std::string why) {
  verdict v;
  v.what = k;
  v.reply = std::move(r);
  v.reason = std::move(why);
  return v;
}
}  // namespace

verdict verdict::reject(smtp::reply r, std::string why) { return refusal(kind::reject, std::move(r), std::move(why)); }
verdict verdict::tempfail(smtp::reply r, std::string why) { return refusal(kind::tempfail, std::move(r), std::move(why)); }

task<result<verdict>> filter_state::on_connect(smtp::session_info const&) { co_return verdict{}; }
task<result<verdict>> filter_state::on_helo(smtp::session_info const&, std::string_view) { co_return verdict{}; }
task<result<verdict>> filter_state::on_mail(transaction&) { co_return verdict{}; }
task<result<verdict>> filter_state::on_rcpt(transaction&, address const&) { co_return verdict{}; }
task<result<verdict>> filter_state::on_message(transaction&, std::string_view) { co_return verdict{}; }

chain_session::chain_session(std::span<chain_entry const> entries, log::logger const& log)
    : entries_(entries), log_(log.with_component("filter")) {
  for (auto const& e : entries_) wants_message_ = wants_message_ || e.f->wants_message();
}

chain_session::~chain_session() = default;

task<std::optional<smtp::reply>> chain_session::connect(smtp::session_info const& session) {
  t_ = transaction{};
  t_.session = &session;
  members_.clear();
  for (auto const& e : entries_) {
    auto st = co_await e.f->begin(session);
    if (!st) {
      log_.warning("filter unavailable", {{"filter", std::string(e.f->name())}, {"error", st.error().message()}});
      if (e.on_failure == failure_policy::tempfail) co_return failure_reply(connect_phase);
      continue;
    }
    members_.push_back({&e, std::move(*st)});
  }
  co_return co_await run(connect_phase, nullptr);
}

task<std::optional<smtp::reply>> chain_session::helo(smtp::session_info const& session, std::string_view name) {
  t_.session = &session;
  co_return co_await run(helo_phase, nullptr, name);
}

task<std::optional<smtp::reply>> chain_session::mail(smtp::session_info const& session, address const& from,
                                                     smtp::mail_params const& params) {
  reset();
  t_.session = &session;
  t_.from = from;
  t_.mail = params;
  co_return co_await run(mail_phase, nullptr);
}

task<std::optional<smtp::reply>> chain_session::rcpt(address const& to) { co_return co_await run(rcpt_phase, &to); }

void chain_session::accepted(address const& to) { t_.rcpts.push_back(to); }

void chain_session::reset() {
  auto const* session = t_.session;
  t_ = transaction{};
  t_.session = session;
  pending_headers_.clear();
  hold_ = discard_ = false;
  for (auto& m : members_) m.state->on_reset();
}

task<std::optional<smtp::reply>> chain_session::run(int phase, address const* rcpt, std::string_view helo) {
  for (auto& m : members_) {
    result<verdict> v = verdict{};
    switch (phase) {
      case connect_phase: v = co_await m.state->on_connect(*t_.session); break;
      case helo_phase: v = co_await m.state->on_helo(*t_.session, helo); break;
      case mail_phase: v = co_await m.state->on_mail(t_); break;
      default: v = co_await m.state->on_rcpt(t_, *rcpt); break;
    }
    auto const name = std::string(m.entry->f->name());
    if (!v) {
      log_.warning("filter failed", {{"filter", name}, {"phase", phase_name(phase)}, {"error", v.error().message()}});
      if (m.entry->on_failure == failure_policy::tempfail) co_return failure_reply(phase);
      continue;
    }
    for (auto& h : v->add_headers) pending_headers_ += h + "\r\n";
    switch (v->what) {
      case verdict::kind::accept: break;
      case verdict::kind::quarantine: hold_ = true; break;
      case verdict::kind::discard: discard_ = true; break;
      case verdict::kind::reject:
      case verdict::kind::tempfail:
        log_.info(v->what == verdict::kind::reject ? "rejected" : "deferred",
                  {{"filter", name}, {"phase", phase_name(phase)}, {"reason", v->reason}});
        co_return v->reply ? *v->reply : default_reply(v->what, phase);
    }
  }
  co_return std::nullopt;
}

task<chain_session::message_outcome> chain_session::message(std::string_view content, std::string_view authserv_id) {
  message_outcome out;
  std::optional<std::string> changed;
  std::string added;
  for (auto& m : members_) {
    if (!m.entry->f->wants_message()) continue;
    std::string_view const current = changed ? std::string_view(*changed) : content;
    auto v = co_await m.state->on_message(t_, current);
    auto const name = std::string(m.entry->f->name());
    if (!v) {
      log_.warning("filter failed", {{"filter", name}, {"phase", "message"}, {"error", v.error().message()}});
      if (m.entry->on_failure == failure_policy::tempfail) {
        out.what = verdict::kind::tempfail;
        out.reply = failure_reply(rcpt_phase);
        co_return out;
      }
      continue;
    }
    for (auto& h : v->add_headers) added += h + "\r\n";
    if (v->replace_message) changed = std::move(*v->replace_message);
    if (v->what == verdict::kind::quarantine) hold_ = true;
    if (v->what == verdict::kind::discard) discard_ = true;
    if (v->what == verdict::kind::reject || v->what == verdict::kind::tempfail) {
      log_.info(v->what == verdict::kind::reject ? "rejected" : "deferred",
                {{"filter", name}, {"phase", "message"}, {"reason", v->reason}});
      out.what = v->what;
      out.reply = v->reply ? *v->reply : default_reply(v->what, rcpt_phase);
      co_return out;
    }
  }
  out.what = discard_ ? verdict::kind::discard : hold_ ? verdict::kind::quarantine : verdict::kind::accept;
  if (!t_.results.empty()) out.headers = authentication_results_header(authserv_id, t_.results);
  std::string_view const current = changed ? std::string_view(*changed) : content;
  if (auto cleaned = remove_claimed_results(current, authserv_id)) changed = std::move(*cleaned);
  out.headers += pending_headers_ + added;
  out.message = std::move(changed);
  co_return out;
}

namespace {

// The authserv-id at the start of an Authentication-Results value (RFC 8601 2.2): after any
// white space and comments, a token or a quoted-string; "" when there is none.
std::string authserv_id_of(std::string_view v) {
  std::size_t i = 0;
  auto skip_cfws = [&] {
    for (;;) {
      while (i < v.size() && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n')) ++i;
      if (i >= v.size() || v[i] != '(') return;
      int depth = 0;  // a comment, nested comments and quoted pairs included
      for (; i < v.size(); ++i) {
        if (v[i] == '\\') ++i;
        else if (v[i] == '(') ++depth;
        else if (v[i] == ')' && --depth == 0) break;
      }
      if (i < v.size()) ++i;
    }
  };
  skip_cfws();
  std::string id;
  if (i < v.size() && v[i] == '"') {
    for (++i; i < v.size() && v[i] != '"'; ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      id += v[i];
    }
    return id;
  }
  for (; i < v.size(); ++i) {
    char const c = v[i];
    if (c == ';' || c == '(' || c == ' ' || c == '\t' || c == '\r' || c == '\n') break;
    id += c;
  }
  return id;
}

}  // namespace

std::optional<std::string> remove_claimed_results(std::string_view message, std::string_view authserv_id) {
  // Past mime::limits (10,000 fields, 1 MiB of header) what was read so far is still cleaned.
  std::vector<mime::field> fields;
  (void)mime::parse_header(message, 0, fields);
  std::string out;
  bool removed = false;
  std::size_t kept_from = 0;  // the first byte not yet copied to out
  for (auto const& f : fields) {
    if (!text::iequals(f.name, "Authentication-Results") || !text::iequals(authserv_id_of(f.value), authserv_id)) continue;
    auto const start = static_cast<std::size_t>(f.name.data() - message.data());
    auto stop = static_cast<std::size_t>(f.value.data() - message.data()) + f.value.size();
    if (message.substr(stop, 2) == "\r\n") stop += 2;
    else if (message.substr(stop, 1) == "\n") stop += 1;
    out.append(message.substr(kept_from, start - kept_from));
    kept_from = stop;
    removed = true;
  }
  if (!removed) return std::nullopt;
  out.append(message.substr(kept_from));
  return out;
}

std::vector<std::string> header_values(std::string_view message, std::string_view name) {
  std::vector<mime::field> fields;
  (void)mime::parse_header(message, 0, fields);
  std::vector<std::string> out;
  for (auto const& f : fields)
    if (text::iequals(f.name, name)) out.push_back(mime::unfold(f.value));
  return out;
}

}  // namespace mailroom::filter
