#include "mailroom/filter/spf.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include "detail/spf_chars.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::filter::spf {

using namespace detail;

std::string_view to_string(status s) noexcept {
  switch (s) {
    case status::none: return "none";
    case status::neutral: return "neutral";
    case status::pass: return "pass";
    case status::fail: return "fail";
    case status::softfail: return "softfail";
    case status::temperror: return "temperror";
    case status::permerror: return "permerror";
  }
  return "none";
}

namespace {

// Leading bits of a and b agree (same family).
bool in_network(asio::ip::address const& a, asio::ip::address const& b, unsigned bits) {
  auto prefix_equal = [bits](auto const& x, auto const& y) {
    unsigned full = bits / 8, rest = bits % 8;
    if (full > x.size()) return false;
    if (!std::equal(x.begin(), x.begin() + full, y.begin())) return false;
    if (rest == 0) return true;
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (x[full] & mask) == (y[full] & mask);
  };
  if (a.is_v4() && b.is_v4()) return prefix_equal(a.to_v4().to_bytes(), b.to_v4().to_bytes());
  if (a.is_v6() && b.is_v6()) return prefix_equal(a.to_v6().to_bytes(), b.to_v6().to_bytes());
  return false;
}

// name ends with "." + suffix (or is suffix), ASCII case-insensitively.
bool within(std::string_view name, std::string_view suffix) noexcept {
  if (name.size() == suffix.size()) return text::iequals(name, suffix);
  return name.size() > suffix.size() && name[name.size() - suffix.size() - 1] == '.' &&
         text::iequals(name.substr(name.size() - suffix.size()), suffix);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// check_host()

namespace {

enum class dns_answer { records, empty, bad_name, failure };

dns_answer classify(std::error_code ec) {
  if (ec == net::dns::errc::nxdomain || ec == net::dns::errc::no_data) return dns_answer::empty;
  if (ec == net::dns::errc::bad_name) return dns_answer::bad_name;
  return dns_answer::failure;
}

status from_qualifier(qualifier q) {
  switch (q) {
    case qualifier::pass: return status::pass;
    case qualifier::fail: return status::fail;
    case qualifier::softfail: return status::softfail;
    case qualifier::neutral: return status::neutral;
  }
  return status::neutral;
}

// What one check_host() level decided.
struct evaluation {
  status result = status::neutral;
  std::string mechanism;
  std::string problem;
  std::optional<macro_string> exp;  // for fail: the exp= of the record that decided
  std::string exp_domain;           // and the <domain> it is expanded with
};

// What one mechanism did: matched or not, or ended the check with an error.
struct step {
  bool matched = false;
  std::optional<status> error;
  std::string problem;
};

step error_step(status s, std::string problem) { return step{false, s, std::move(problem)}; }

std::string ip_nibbles(asio::ip::address const& ip) {
  if (ip.is_v4()) return ip.to_string();
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (auto b : ip.to_v6().to_bytes()) {
    if (!out.empty()) out += '.';
    out += hex[b >> 4];
    out += '.';
    out += hex[b & 0xf];
  }
  return out;
}

// A <domain> check_host() may start from (RFC 7208 4.3): multi-label, labels of 1 to 63
// letters, digits, '-' or '_', at most 253 octets, not an address (literal or all-numeric top).
bool valid_start_domain(std::string_view d) {
  d = strip_dot(d);
  if (d.empty() || d.size() > 253) return false;
  std::size_t labels = 0, start = 0;
  for (;;) {
    auto dot = std::min(d.find('.', start), d.size());
    auto label = d.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_'; }))
      return false;
    ++labels;
    if (dot == d.size()) {
      if (std::all_of(label.begin(), label.end(), is_digit)) return false;
      break;
    }
    start = dot + 1;
  }
  return labels >= 2;
}

class checker {
 public:
  checker(dns& d, options const& opts, asio::ip::address ip, std::string_view sender, std::string_view helo)
      : dns_(d), opts_(opts), ip_(ip) {
    auto at = sender.rfind('@');
    std::string_view local = at == std::string_view::npos ? std::string_view() : sender.substr(0, at);
    std::string_view domain = at == std::string_view::npos ? sender : sender.substr(at + 1);
    base_.l = local.empty() ? "postmaster" : std::string(local);
    base_.o = std::string(domain);
    base_.s = base_.l + "@" + base_.o;
    base_.h = std::string(helo);
    base_.i = ip_nibbles(ip);
    base_.c = ip.to_string();
    base_.v = ip.is_v4() ? "in-addr" : "ip6";
    base_.r = opts.receiver;
    auto now = opts.now ? *opts.now
                        : std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
    base_.t = std::to_string(now);
    if (opts.time_limit.count() > 0) deadline_ = std::chrono::steady_clock::now() + opts.time_limit;
  }

  std::string const& sender() const noexcept { return base_.s; }
  std::size_t lookups = 0;
  std::size_t voids = 0;

  task<evaluation> evaluate(std::string const& domain, std::size_t depth) {
    evaluation ev;
    if (out_of_time()) {
      ev.result = status::temperror;
      ev.problem = time_problem();
      co_return ev;
    }
    auto txt = co_await dns_.txt(domain);
    if (!txt) {
      if (classify(txt.error()) == dns_answer::failure) {
        ev.result = status::temperror;
        ev.problem = "DNS failure looking up TXT of " + domain + ": " + txt.error().message();
      } else {
        ev.result = status::none;
        ev.problem = "no SPF record at " + domain;
      }
      co_return ev;
    }
    std::string const* found = nullptr;
    for (auto const& t : *txt) {
      if (!is_spf_record(t)) continue;
      if (found) {
        ev.result = status::permerror;
        ev.problem = "more than one SPF record at " + domain;
        co_return ev;
      }
      found = &t;
    }
    if (!found) {
      ev.result = status::none;
      ev.problem = "no SPF record at " + domain;
      co_return ev;
    }
    auto rec = parse_record(*found, opts_.limits);
    if (!rec) {
      ev.result = status::permerror;
      ev.problem = make_error_code(rec.error().code).message() + " at " + domain + (rec.error().term.empty() ? "" : ": ") +
                   rec.error().term;
      co_return ev;
    }

    for (auto const& m : rec->mechanisms) {
      bool const queries = m.kind == mechanism_kind::include || m.kind == mechanism_kind::a ||
                           m.kind == mechanism_kind::mx || m.kind == mechanism_kind::ptr ||
                           m.kind == mechanism_kind::exists;
      if (queries && ++lookups > opts_.limits.dns_mechanisms) {
        ev.result = status::permerror;
        ev.problem = "more than " + std::to_string(opts_.limits.dns_mechanisms) + " DNS-querying terms";
        co_return ev;
      }
      if (queries && out_of_time()) {
        ev.result = status::temperror;
        ev.problem = time_problem();
        co_return ev;
      }
      step s = co_await run(m, domain, depth);
      if (s.error) {
        ev.result = *s.error;
        ev.problem = std::move(s.problem);
        co_return ev;
      }
      if (s.matched) {
        ev.result = from_qualifier(m.qualifier);
        ev.mechanism = m.text;
        if (ev.result == status::fail && rec->exp) {
          ev.exp = rec->exp;
          ev.exp_domain = domain;
        }
        co_return ev;
      }
    }

    if (rec->redirect && !rec->has_all) {
      if (++lookups > opts_.limits.dns_mechanisms) {
        ev.result = status::permerror;
        ev.problem = "more than " + std::to_string(opts_.limits.dns_mechanisms) + " DNS-querying terms";
        co_return ev;
      }
      auto target = co_await target_name(*rec->redirect, domain);
      if (!target || depth + 1 > opts_.limits.max_depth) {
        ev.result = status::permerror;
        ev.problem = target ? "include/redirect nested too deep" : "redirect to an invalid name from " + domain;
        co_return ev;
      }
      auto sub = co_await evaluate(*target, depth + 1);
      if (sub.result == status::none) {
        sub.result = status::permerror;
        sub.problem = "redirect=" + *target + ": no SPF record";
      }
      co_return sub;
    }
    ev.result = status::neutral;
    ev.mechanism = "default";
    co_return ev;
  }

  // The explanation for a fail (RFC 7208 6.2): "" whenever anything is wrong with it.
  task<std::string> explain(macro_string const& exp, std::string const& domain) {
    if (out_of_time()) co_return std::string();
    auto target = co_await target_name(exp, domain);
    if (!target) co_return std::string();
    auto txt = co_await dns_.txt(*target);
    if (!txt || txt->size() != 1) co_return std::string();
    auto const& t = txt->front();
    if (t.size() > opts_.limits.max_record || !std::all_of(t.begin(), t.end(), is_printable)) co_return std::string();
    auto m = parse_macro_string(t, macro_use::explanation);
    if (!m) co_return std::string();
    auto values = co_await values_for(*m, domain);
    co_return expand_text(*m, values, opts_.limits.max_explanation);
  }

 private:
  task<macro_values> values_for(macro_string const& m, std::string const& domain) {
    macro_values v = base_;
    v.d = domain;
    if (m.uses('p')) v.p = co_await validated_name(domain);
    co_return v;
  }

  task<std::optional<std::string>> target_name(macro_string const& m, std::string const& domain) {
    auto values = co_await values_for(m, domain);
    co_return expand_domain(m, values);
  }

  // The first ptr_names names of the client's PTR answer (none on any error), looked up once.
  task<std::vector<std::string> const*> ptr_names() {
    if (!ptr_names_) {
      ptr_names_.emplace();
      auto names = co_await dns_.ptr(ip_);
      if (names) {
        for (auto const& n : *names) {
          if (ptr_names_->size() == opts_.limits.ptr_names) break;
          ptr_names_->emplace_back(strip_dot(n));
        }
      }
    }
    co_return &*ptr_names_;
  }

  // Whether `name` has an address record equal to the client's (RFC 7208 5.5), looked up once.
  task<bool> validated(std::string const& name) {
    auto key = text::to_lower(name);
    if (auto it = validated_.find(key); it != validated_.end()) co_return it->second;
    if (out_of_time()) co_return false;  // the check is over anyway
    auto addrs = co_await addresses(name);
    bool const ok = addrs && std::find(addrs->begin(), addrs->end(), ip_) != addrs->end();
    validated_.emplace(std::move(key), ok);
    co_return ok;
  }

  // %{p}: a validated name of the client, preferring <domain>, then a subdomain, then any.
  task<std::string> validated_name(std::string const& domain) {
    auto const* names = co_await ptr_names();
    std::string best;
    int best_rank = 3;
    for (auto const& n : *names) {
      int rank = text::iequals(n, domain) ? 0 : within(n, domain) ? 1 : 2;
      if (rank >= best_rank) continue;
      if (bool const ok = co_await validated(n); ok) {
        best = n;
        best_rank = rank;
        if (rank == 0) break;
      }
    }
    co_return best.empty() ? std::string("unknown") : best;
  }

  // True once the time limit has passed: no further query may start.
  bool out_of_time() const {
    return deadline_ && std::chrono::steady_clock::now() >= *deadline_;
  }
  std::string time_problem() const {
    return "time limit of " + std::to_string(opts_.time_limit.count()) + " ms exceeded";
  }

  // Counts a void lookup; an error step once over the limit.
  std::optional<step> void_lookup() {
    if (++voids > opts_.limits.void_lookups)
      return error_step(status::permerror, "more than " + std::to_string(opts_.limits.void_lookups) + " void lookups");
    return std::nullopt;
  }

  // Addresses of `name` in the client's family. (No co_await inside ?: -- g++ 12 miscompiles it.)
  task<result<std::vector<asio::ip::address>>> addresses(std::string const& name) {
    if (ip_.is_v4()) co_return co_await dns_.a(name);
    co_return co_await dns_.aaaa(name);
  }

  bool matches_any(std::vector<asio::ip::address> const& addrs, mechanism const& m) const {
    unsigned bits = ip_.is_v4() ? m.cidr4 : m.cidr6;
    return std::any_of(addrs.begin(), addrs.end(), [&](auto const& a) { return in_network(ip_, a, bits); });
  }

  task<step> run(mechanism const& m, std::string const& domain, std::size_t depth) {
    switch (m.kind) {
      case mechanism_kind::all: co_return step{true, std::nullopt, {}};
      case mechanism_kind::ip4:
      case mechanism_kind::ip6: {
        unsigned bits = m.kind == mechanism_kind::ip4 ? m.cidr4 : m.cidr6;
        co_return step{in_network(ip_, m.network, bits), std::nullopt, {}};
      }
      default: break;
    }
    std::optional<std::string> target = domain;
    if (m.domain) target = co_await target_name(*m.domain, domain);

    switch (m.kind) {
      case mechanism_kind::include: {
        if (!target) co_return error_step(status::permerror, "include of an invalid name from " + domain);
        if (depth + 1 > opts_.limits.max_depth) co_return error_step(status::permerror, "include/redirect nested too deep");
        auto sub = co_await evaluate(*target, depth + 1);
        switch (sub.result) {
          case status::pass: co_return step{true, std::nullopt, {}};
          case status::fail:
          case status::softfail:
          case status::neutral: co_return step{};
          case status::temperror: co_return error_step(status::temperror, std::move(sub.problem));
          case status::permerror: co_return error_step(status::permerror, std::move(sub.problem));
          case status::none: co_return error_step(status::permerror, "include:" + *target + ": no SPF record");
        }
        co_return step{};
      }
      case mechanism_kind::a:
      case mechanism_kind::exists: {
        if (!target) co_return step{};
        result<std::vector<asio::ip::address>> addrs;
        if (m.kind == mechanism_kind::a) addrs = co_await addresses(*target);
        else addrs = co_await dns_.a(*target);  // exists: always A (RFC 7208 5.7)
        if (!addrs) co_return co_await on_error(addrs.error(), *target);
        if (m.kind == mechanism_kind::exists) co_return step{true, std::nullopt, {}};
        co_return step{matches_any(*addrs, m), std::nullopt, {}};
      }
      case mechanism_kind::mx: {
        if (!target) co_return step{};
        auto mxs = co_await dns_.mx(*target);
        if (!mxs) co_return co_await on_error(mxs.error(), *target);
        if (mxs->size() > opts_.limits.mx_names)
          co_return error_step(status::permerror, "more than " + std::to_string(opts_.limits.mx_names) + " MX records at " + *target);
        for (auto const& mx : *mxs) {
          if (mx.host.empty()) continue;  // null MX
          if (out_of_time()) co_return error_step(status::temperror, time_problem());
          auto addrs = co_await addresses(mx.host);
          if (!addrs) {
            if (classify(addrs.error()) == dns_answer::failure)
              co_return error_step(status::temperror, "DNS failure looking up " + mx.host + ": " + addrs.error().message());
            continue;
          }
          if (matches_any(*addrs, m)) co_return step{true, std::nullopt, {}};
        }
        co_return step{};
      }
      case mechanism_kind::ptr: {
        if (!target) co_return step{};
        auto const* names = co_await ptr_names();
        for (auto const& n : *names) {
          if (!within(n, *target)) continue;
          if (bool const ok = co_await validated(n); ok) co_return step{true, std::nullopt, {}};
        }
        co_return step{};
      }
      default: co_return step{};
    }
  }

  // A lookup by a, mx or exists that failed: no match (void or unqueryable name) or temperror.
  task<step> on_error(std::error_code ec, std::string const& name) {
    switch (classify(ec)) {
      case dns_answer::empty:
        if (auto over = void_lookup()) co_return std::move(*over);
        co_return step{};
      case dns_answer::bad_name:
      case dns_answer::records: co_return step{};
      case dns_answer::failure: break;
    }
    co_return error_step(status::temperror, "DNS failure looking up " + name + ": " + ec.message());
  }

  dns& dns_;
  options const& opts_;
  asio::ip::address ip_;
  macro_values base_;
  std::optional<std::vector<std::string>> ptr_names_;
  std::map<std::string, bool> validated_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
};

asio::ip::address unmapped(asio::ip::address ip) {
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, ip.to_v6());
  return ip;
}

task<outcome> run_check(dns& d, asio::ip::address ip, std::string domain, std::string sender, std::string helo,
                        identity id, options opts) {
  outcome o;
  o.identity = id;
  o.ip = unmapped(ip);
  o.helo = helo;
  o.domain = std::string(strip_dot(domain));
  checker c(d, opts, o.ip, sender, helo);
  o.sender = c.sender();
  if (!valid_start_domain(domain)) {
    o.result = status::none;
    o.problem = "not a valid domain for SPF";
    co_return o;
  }
  auto ev = co_await c.evaluate(o.domain, 0);
  o.result = ev.result;
  o.mechanism = std::move(ev.mechanism);
  o.problem = std::move(ev.problem);
  if (o.result != status::temperror && o.result != status::permerror) o.problem.clear();
  o.dns_mechanisms = c.lookups;
  o.void_lookups = c.voids;
  if (ev.result == status::fail && ev.exp) o.explanation = co_await c.explain(*ev.exp, ev.exp_domain);
  co_return o;
}

}  // namespace

task<outcome> check_host(dns& d, asio::ip::address ip, std::string_view domain, std::string_view sender,
                         std::string_view helo, options const& opts) {
  return run_check(d, ip, std::string(domain), std::string(sender), std::string(helo), identity::mailfrom, opts);
}

task<outcome> check_mail_from(dns& d, asio::ip::address ip, std::string_view mail_from, std::string_view helo,
                              options const& opts) {
  std::string sender, domain;
  if (mail_from.empty()) {
    sender = "postmaster@" + std::string(helo);
    domain = std::string(helo);
  } else if (auto at = mail_from.rfind('@'); at == std::string_view::npos) {
    sender = "postmaster@" + std::string(mail_from);
    domain = std::string(mail_from);
  } else {
    sender = std::string(mail_from);
    domain = std::string(mail_from.substr(at + 1));
  }
  return run_check(d, ip, std::move(domain), std::move(sender), std::string(helo), identity::mailfrom, opts);
}

task<outcome> check_helo(dns& d, asio::ip::address ip, std::string_view helo, options const& opts) {
  return run_check(d, ip, std::string(helo), "postmaster@" + std::string(helo), std::string(helo), identity::helo,
                   opts);
}

// ---------------------------------------------------------------------------------------------
// Header fields

namespace {

constexpr std::size_t max_header_value = 256;

// RFC 5322 atext plus '.', i.e. what may stand unquoted in a dot-atom.
bool is_atext(char c) noexcept {
  return is_alnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool is_dot_atom(std::string_view s) noexcept {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i - 1] == '.') return false;
    } else if (!is_atext(s[i])) {
      return false;
    }
  }
  return true;
}

// A quoted-string with '"' and '\' escaped and anything unprintable replaced by '?'.
std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (!is_printable(c)) c = '?';
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A dot-atom when it is one, else a quoted-string.
std::string value_text(std::string_view s) { return is_dot_atom(s) ? std::string(s) : quoted(s); }

// local@domain unquoted when both halves allow it (RFC 8601 pvalue), else a quoted-string.
std::string mailbox_text(std::string_view s) {
  auto at = s.rfind('@');
  if (at != std::string_view::npos && is_dot_atom(s.substr(0, at)) && is_dot_atom(s.substr(at + 1))) return std::string(s);
  return value_text(s);
}

// Comment text: parentheses and '\' escaped, unprintable octets replaced.
std::string comment_text(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, max_header_value)) {
    if (!is_printable(c)) c = '?';
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string received_spf(outcome const& o, std::string_view receiver) {
  std::string const ip = o.ip.to_string();
  std::string const who = o.identity == identity::helo ? o.helo : o.sender;
  std::string comment;
  switch (o.result) {
    case status::pass: comment = "domain of " + who + " designates " + ip + " as permitted sender"; break;
    case status::fail: comment = "domain of " + who + " does not designate " + ip + " as permitted sender"; break;
    case status::softfail:
      comment = "domain of transitioning " + who + " does not designate " + ip + " as permitted sender";
      break;
    case status::neutral: comment = ip + " is neither permitted nor denied by domain of " + who; break;
    case status::none: comment = "domain of " + who + " does not publish an SPF policy"; break;
    case status::temperror: comment = "temporary error checking " + who + ": " + o.problem; break;
    case status::permerror: comment = "permanent error in the SPF policy for " + who + ": " + o.problem; break;
  }
  std::string out(to_string(o.result));
  out += " (";
  if (!receiver.empty()) out += comment_text(receiver) + ": ";
  out += comment_text(comment) + ")";
  auto pair = [&out](std::string_view key, std::string_view value, bool mailbox = false) {
    if (value.empty() || value.size() > max_header_value) return;
    out += "\r\n ";
    out += key;
    out += '=';
    out += mailbox ? mailbox_text(value) : value_text(value);
    out += ';';
  };
  pair("receiver", receiver);
  pair("client-ip", ip);
  if (o.identity == identity::mailfrom) pair("envelope-from", o.sender, true);
  pair("helo", o.helo);
  pair("identity", o.identity == identity::helo ? "helo" : "mailfrom");
  if (o.mechanism != "default") pair("mechanism", o.mechanism);
  if (o.result == status::temperror || o.result == status::permerror) pair("problem", o.problem);
  return out;
}

std::string authentication_results(outcome const& o) {
  std::string out = "spf=";
  out += to_string(o.result);
  if ((o.result == status::temperror || o.result == status::permerror) && !o.problem.empty())
    out += " (" + comment_text(o.problem) + ")";
  std::string_view const value = o.identity == identity::helo ? std::string_view(o.helo) : std::string_view(o.sender);
  if (!value.empty() && value.size() <= max_header_value) {
    out += o.identity == identity::helo ? " smtp.helo=" : " smtp.mailfrom=";
    out += o.identity == identity::helo ? value_text(value) : mailbox_text(value);
  }
  return out;
}

}  // namespace mailroom::filter::spf
