// The sans-I/O half of rspamd.hpp, apart from the client so that fuzzers can compile it alone.
#include "mailroom/filter/rspamd.hpp"

#include <cmath>

#include "filter/detail/http_reply.hpp"
#include "filter/detail/json.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/net/error.hpp"

namespace mailroom::filter {

using detail::json_value;
using kind = json_value::kind;

namespace {

detail::http_limits http_limits_of(rspamd_reply_limits const& l) { return {l.max_line, l.max_headers, l.max_body}; }

// The optional member `key` of object `o` must be of kind k (or absent): null when absent, an
// error when of another kind.
result<json_value const*> member(json_value const& o, std::string_view key, kind k) {
  auto const* v = o.find(key);
  if (v && !v->is(k)) return fail(scan_errc::malformed_reply);
  return v;
}

bool fits_int(double d) { return std::isfinite(d) && d == std::floor(d) && d >= -1e9 && d <= 1e9; }

result<void> add_header(std::string const& name, json_value const& v, rspamd_verdict& out) {
  if (v.is(kind::string)) {
    out.add_headers.push_back({name, v.string, std::nullopt});
    return {};
  }
  if (v.is(kind::array)) {
    for (auto const& e : v.elements) {
      if (e.is(kind::array)) return fail(scan_errc::malformed_reply);
      if (auto r = add_header(name, e, out); !r) return r;
    }
    return {};
  }
  if (!v.is(kind::object)) return fail(scan_errc::malformed_reply);
  auto value = member(v, "value", kind::string);
  auto order = member(v, "order", kind::number);
  if (!value || !order || !*value || (*order && !fits_int((*order)->number))) return fail(scan_errc::malformed_reply);
  std::optional<int> pos;
  if (*order) pos = static_cast<int>((*order)->number);
  out.add_headers.push_back({name, (*value)->string, pos});
  return {};
}

result<void> milter(json_value const& m, rspamd_verdict& out) {
  auto add = member(m, "add_headers", kind::object);
  auto remove = member(m, "remove_headers", kind::object);
  if (!add || !remove) return fail(scan_errc::malformed_reply);
  if (*add)
    for (auto const& [name, v] : (*add)->members)
      if (auto r = add_header(name, v, out); !r) return r;
  if (*remove)
    for (auto const& [name, v] : (*remove)->members) {
      if (!v.is(kind::number) || !fits_int(v.number)) return fail(scan_errc::malformed_reply);
      out.remove_headers.push_back({name, static_cast<int>(v.number)});
    }
  return {};
}

/// The rspamd "error" member of an error reply, if the body is such JSON.
std::string error_text_of(std::string_view body, rspamd_reply_limits const& limits) {
  detail::json_limits jl{limits.max_depth, limits.max_values, limits.max_string};
  auto doc = detail::parse_json(body, jl);
  if (!doc) return {};
  if (auto const* e = doc->find("error"); e && e->is(kind::string)) return e->string;
  return {};
}

bool valid_value(std::string_view v) { return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }

bool valid_name(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos))
      return false;
  return true;
}


}  // namespace

result<rspamd_verdict> parse_rspamd_json(std::string_view json, rspamd_reply_limits const& limits) {
  if (json.size() > limits.max_body) return fail(scan_errc::reply_too_large);
  detail::json_limits jl{limits.max_depth, limits.max_values, limits.max_string};
  auto doc = detail::parse_json(json, jl);
  if (!doc) return fail(doc.error());
  if (!doc->is(kind::object)) return fail(scan_errc::malformed_reply);
  rspamd_verdict out;
  auto action = member(*doc, "action", kind::string);
  auto score = member(*doc, "score", kind::number);
  auto required = member(*doc, "required_score", kind::number);
  auto skipped = member(*doc, "is_skipped", kind::boolean);
  auto symbols = member(*doc, "symbols", kind::object);
  auto m = member(*doc, "milter", kind::object);
  auto messages = member(*doc, "messages", kind::object);
  auto subject = member(*doc, "subject", kind::string);
  if (!action || !score || !required || !skipped || !symbols || !m || !messages || !subject || !*action || !*score)
    return fail(scan_errc::malformed_reply);
  out.action = (*action)->string;
  out.score = (*score)->number;
  if (*required) out.required_score = (*required)->number;
  if (*skipped) out.skipped = (*skipped)->boolean;
  if (*subject) out.subject = (*subject)->string;
  if (*symbols) {
    out.symbols.reserve((*symbols)->members.size());
    for (auto const& [name, sym] : (*symbols)->members) {
      if (!sym.is(kind::object)) return fail(scan_errc::malformed_reply);
      auto s = member(sym, "score", kind::number);
      if (!s) return fail(s.error());
      out.symbols.push_back({name, *s ? (*s)->number : 0.0});
    }
  }
  if (*m)
    if (auto r = milter(**m, out); !r) return fail(r.error());
  if (*messages) {
    auto smtp = member(**messages, "smtp_message", kind::string);
    if (!smtp) return fail(smtp.error());
    if (*smtp) out.smtp_message = (*smtp)->string;
  }
  return out;
}

struct rspamd_reply_parser::impl {
  explicit impl(rspamd_reply_limits const& l) : limits(l), http(http_limits_of(l)) {}
  rspamd_reply_limits limits;
  detail::http_response_parser http;
  int status = 0;
  std::string error_text;

  result<rspamd_verdict> interpret(detail::http_response const& r) {
    status = r.status;
    if (r.status == 200) return parse_rspamd_json(r.body, limits);
    error_text = error_text_of(r.body, limits);
    if (r.status == 503) return fail(scan_errc::temporarily_unavailable);
    if (r.status == 413) return fail(scan_errc::size_limit_exceeded);
    if (r.status >= 400 && r.status < 500) return fail(scan_errc::request_refused);
    if (r.status >= 500) return fail(scan_errc::scanner_error);
    return fail(scan_errc::malformed_reply);
  }
};

rspamd_reply_parser::rspamd_reply_parser(rspamd_reply_limits limits) : impl_(std::make_unique<impl>(limits)) {}
rspamd_reply_parser::~rspamd_reply_parser() = default;
rspamd_reply_parser::rspamd_reply_parser(rspamd_reply_parser&&) noexcept = default;
rspamd_reply_parser& rspamd_reply_parser::operator=(rspamd_reply_parser&&) noexcept = default;

void rspamd_reply_parser::feed(std::string_view bytes) { impl_->http.feed(bytes); }

result<std::optional<rspamd_verdict>> rspamd_reply_parser::next() {
  auto r = impl_->http.next();
  if (!r) return fail(r.error());
  if (!*r) return std::optional<rspamd_verdict>{};
  auto v = impl_->interpret(**r);
  if (!v) return fail(v.error());
  return std::optional<rspamd_verdict>(std::move(*v));
}

result<rspamd_verdict> rspamd_reply_parser::finish() {
  auto r = impl_->http.finish();
  if (!r) return fail(r.error());
  return impl_->interpret(*r);
}

int rspamd_reply_parser::status() const noexcept { return impl_->status; }
std::string const& rspamd_reply_parser::error_text() const noexcept { return impl_->error_text; }

result<std::string> rspamd_request_head(std::string_view path, std::string_view host, rspamd_envelope const& env,
                                        std::uint64_t length) {
  if (!path.starts_with("/") || path.find_first_of(" \r\n\t") != std::string_view::npos ||
      path.find('\0') != std::string_view::npos || !valid_value(host))
    return fail(errc::invalid_argument);
  std::string out = "POST " + std::string(path) + " HTTP/1.1\r\nHost: " + std::string(host) +
                    "\r\nConnection: close\r\nContent-Length: " + std::to_string(length) + "\r\n";
  auto put = [&](std::string_view name, std::string_view value) {
    if (!valid_value(value)) return false;
    out.append(name).append(": ").append(value).append("\r\n");
    return true;
  };
  bool ok = true;
  if (env.ip) ok &= put("IP", env.ip->to_string());
  if (!env.helo.empty()) ok &= put("Helo", env.helo);
  if (!env.from.empty()) ok &= put("From", env.from);
  for (auto const& r : env.rcpts) ok &= put("Rcpt", r);
  if (!env.queue_id.empty()) ok &= put("Queue-Id", env.queue_id);
  if (!env.user.empty()) ok &= put("User", env.user);
  if (!env.hostname.empty()) ok &= put("Hostname", env.hostname);
  for (auto const& [name, value] : env.extra) ok &= valid_name(name) && put(name, value);
  if (!ok) return fail(errc::invalid_argument);
  out += "\r\n";
  return out;
}

}  // namespace mailroom::filter
