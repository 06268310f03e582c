// The sans-I/O part of DMARC (no coroutines, so the fuzzer can instrument it); discovery is in
// dmarc_discover.cpp.
#include "mailroom/filter/dmarc.hpp"

#include <random>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/mime/address.hpp"

namespace mailroom::filter::dmarc {

namespace {

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::not_dmarc: return "not a DMARC record";
    case errc::no_policy: return "DMARC record without a valid policy";
    case errc::too_long: return "DMARC record too long";
    case errc::too_many_tags: return "DMARC record with too many tags";
    case errc::multiple_records: return "several DMARC records";
    case errc::no_from: return "no From address";
    case errc::multiple_from: return "several From addresses";
    case errc::no_from_domain: return "From address without a domain";
    case errc::bad_from_domain: return "malformed From domain";
  }
  return nullptr;
}

bool is_wsp(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

std::optional<policy> parse_policy(std::string_view v) {
  if (text::iequals(v, "none")) return policy::none;
  if (text::iequals(v, "quarantine")) return policy::quarantine;
  if (text::iequals(v, "reject")) return policy::reject;
  return std::nullopt;
}

std::optional<alignment> parse_alignment(std::string_view v) {
  if (text::iequals(v, "r")) return alignment::relaxed;
  if (text::iequals(v, "s")) return alignment::strict;
  return std::nullopt;
}

// "scheme:rest[!size]" (RFC 7489 6.4 dmarc-uri); nullopt when malformed.
std::optional<report_uri> parse_uri(std::string_view s) {
  s = trim(s);
  report_uri out;
  if (auto bang = s.rfind('!'); bang != std::string_view::npos) {
    std::string_view size = s.substr(bang + 1);
    std::uint64_t unit = 1;
    if (!size.empty() && !is_digit(size.back())) {
      switch (text::to_lower(size.back())) {
        case 'k': unit = 1ull << 10; break;
        case 'm': unit = 1ull << 20; break;
        case 'g': unit = 1ull << 30; break;
        case 't': unit = 1ull << 40; break;
        default: return std::nullopt;
      }
      size.remove_suffix(1);
    }
    auto n = text::parse_uint(size, UINT64_MAX / unit);
    if (!n) return std::nullopt;
    out.max_size = *n * unit;
    s = s.substr(0, bang);
  }
  auto colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size() || !is_alpha(s[0])) return std::nullopt;
  for (std::size_t i = 1; i < colon; ++i)
    if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.') return std::nullopt;
  for (char c : s)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return std::nullopt;
  out.uri = std::string(s);
  return out;
}

// A comma-separated URI list; false when it holds no valid URI.
bool parse_uri_list(std::string_view v, std::size_t max, std::vector<report_uri>& out) {
  while (true) {
    auto comma = v.find(',');
    if (auto u = parse_uri(v.substr(0, comma)); u && out.size() < max) out.push_back(std::move(*u));
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return !out.empty();
}

// Splits "a:b:c" into trimmed lowercase parts; false for an empty part.
bool split_colon(std::string_view v, std::vector<std::string>& parts) {
  parts.clear();
  while (true) {
    auto colon = v.find(':');
    auto part = trim(v.substr(0, colon));
    if (part.empty()) return false;
    parts.push_back(text::to_lower(part));
    if (colon == std::string_view::npos) return true;
    v.remove_prefix(colon + 1);
  }
}

bool parse_fo(std::string_view v, record& r) {
  std::vector<std::string> parts;
  if (!split_colon(v, parts)) return false;
  bool all = false, any = false, d = false, s = false;
  for (auto const& p : parts) {
    if (p == "0") all = true;
    else if (p == "1") any = true;
    else if (p == "d") d = true;
    else if (p == "s") s = true;
    else return false;
  }
  r.fo_all = all;
  r.fo_any = any;
  r.fo_dkim = d;
  r.fo_spf = s;
  return true;
}

bool parse_rf(std::string_view v, record& r) {
  std::vector<std::string> parts;
  if (!split_colon(v, parts)) return false;
  for (auto const& p : parts)
    for (char c : p)
      if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
  r.rf = std::move(parts);
  return true;
}

bool is_token_char(char c) noexcept {
  // RFC 2045 token: printable ASCII except tspecials.
  if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  return std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

policy lower(policy p) noexcept { return p == policy::reject ? policy::quarantine : policy::none; }

std::string normalize_domain(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return text::to_lower(d);
}

}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("dmarc", describe, "unknown DMARC error");
  return instance;
}

std::string_view to_string(policy p) noexcept {
  switch (p) {
    case policy::none: return "none";
    case policy::quarantine: return "quarantine";
    case policy::reject: return "reject";
  }
  return "none";
}

std::string_view to_string(outcome o) noexcept {
  switch (o) {
    case outcome::none: return "none";
    case outcome::pass: return "pass";
    case outcome::fail: return "fail";
    case outcome::temperror: return "temperror";
    case outcome::permerror: return "permerror";
  }
  return "none";
}

bool is_dmarc_record(std::string_view text) noexcept {
  if (text.empty() || text[0] != 'v') return false;
  std::size_t i = 1;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  if (i == text.size() || text[i] != '=') return false;
  ++i;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  if (text.substr(i, 6) != "DMARC1") return false;
  i += 6;
  return i == text.size() || is_wsp(text[i]) || text[i] == ';';
}

result<record> parse_record(std::string_view text, record_limits limits) {
  if (text.size() > limits.max_length) return fail(errc::too_long);
  if (!is_dmarc_record(text)) return fail(errc::not_dmarc);
  record r;
  bool valid_p = false, valid_sp = true, has_rua = false;
  std::vector<std::string> seen;  // tag names already taken
  std::size_t tags = 0;
  bool first = true;
  while (!text.empty()) {
    auto semi = text.find(';');
    std::string_view part = trim(text.substr(0, semi));
    text.remove_prefix(semi == std::string_view::npos ? text.size() : semi + 1);
    if (first) {  // v=DMARC1, checked above
      first = false;
      continue;
    }
    if (part.empty()) continue;
    if (++tags > limits.max_tags) return fail(errc::too_many_tags);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string name = text::to_lower(trim(part.substr(0, eq)));
    std::string_view value = trim(part.substr(eq + 1));
    if (name.empty() || !is_alpha(name[0])) continue;
    bool repeated = false;
    for (auto const& s : seen) repeated = repeated || s == name;
    if (repeated) continue;
    if (name == "p") {
      if (auto p = parse_policy(value)) {
        r.p = *p;
        valid_p = true;
      }
    } else if (name == "sp") {
      r.sp = parse_policy(value);
      valid_sp = r.sp.has_value();
    } else if (name == "adkim") {
      r.adkim = parse_alignment(value).value_or(alignment::relaxed);
    } else if (name == "aspf") {
      r.aspf = parse_alignment(value).value_or(alignment::relaxed);
    } else if (name == "pct") {
      r.pct = static_cast<unsigned>(text::parse_uint(value, 100).value_or(100));
    } else if (name == "rua") {
      has_rua = parse_uri_list(value, limits.max_uris, r.rua);
    } else if (name == "ruf") {
      parse_uri_list(value, limits.max_uris, r.ruf);
    } else if (name == "fo") {
      if (!parse_fo(value, r)) parse_fo("0", r);
    } else if (name == "rf") {
      parse_rf(value, r);
    } else if (name == "ri") {
      r.ri = static_cast<std::uint32_t>(text::parse_uint(value, UINT32_MAX).value_or(86400));
    } else {
      continue;  // unknown tags are ignored (and may repeat)
    }
    seen.push_back(std::move(name));  // known tags only: at most ten
  }
  if (!valid_p || !valid_sp) {
    if (!has_rua) return fail(errc::no_policy);
    r.p = policy::none;
    r.sp.reset();
    r.p_assumed = true;
  }
  return r;
}

result<std::string> from_domain(std::span<std::string_view const> from_fields) {
  if (from_fields.empty()) return fail(errc::no_from);
  if (from_fields.size() > 1) return fail(errc::multiple_from);
  // A list that fills the cap counts as several mailboxes: padding (empty groups count two
  // entries each) must not hide a second mailbox behind the cap.
  constexpr std::size_t cap = 1000;
  auto list = mime::parse_address_list(from_fields[0], cap);
  if (list.size() >= cap) return fail(errc::multiple_from);
  mime::address const* one = nullptr;
  for (auto const& a : list) {
    if (a.group || a.group_end) continue;
    if (one) return fail(errc::multiple_from);
    one = &a;
  }
  if (!one) return fail(errc::no_from);
  if (one->host.empty()) return fail(errc::no_from_domain);
  std::string d = normalize_domain(one->host);
  if (d.empty() || d.size() > 255) return fail(errc::bad_from_domain);
  for (std::size_t i = 0; i < d.size(); ++i) {
    char c = d[i];
    bool ok = is_alpha(c) || is_digit(c) || c == '-' || c == '_' || static_cast<unsigned char>(c) >= 0x80 ||
              (c == '.' && i != 0 && d[i - 1] != '.');
    if (!ok) return fail(errc::bad_from_domain);
  }
  if (!text::is_valid_utf8(d)) return fail(errc::bad_from_domain);
  return d;
}

result<std::string> from_domain(std::string_view from_field) { return from_domain(std::span<std::string_view const>(&from_field, 1)); }

bool aligned(std::string_view identifier, std::string_view from_domain, alignment mode, public_suffix_list const& psl) {
  std::string const a = normalize_domain(identifier);
  std::string const b = normalize_domain(from_domain);
  if (a.empty() || b.empty()) return false;
  if (mode == alignment::strict) return a == b;
  std::string const oa = psl.organizational_domain(a);
  return !oa.empty() && oa == psl.organizational_domain(b);
}

random_source default_random() {
  return [] {
    thread_local std::mt19937 gen{std::random_device{}()};
    return std::uniform_int_distribution<unsigned>(0, 99)(gen);
  };
}

evaluation evaluate(std::string_view from_domain, discovery const& found, auth_results const& auth,
                    public_suffix_list const& psl, random_source const& random) {
  evaluation e;
  e.from_domain = normalize_domain(from_domain);
  if (found.state == discovery::status::temperror) {
    e.result = outcome::temperror;
    e.error = found.error;
    return e;
  }
  // Alignment is computed even without a policy: reports and logs want it.
  alignment aspf = found.state == discovery::status::found ? found.rec.aspf : alignment::relaxed;
  alignment adkim = found.state == discovery::status::found ? found.rec.adkim : alignment::relaxed;
  e.spf_aligned = auth.spf_pass && aligned(auth.spf_domain, e.from_domain, aspf, psl);
  for (auto const& sig : auth.dkim) {
    if (!sig.pass) continue;
    bool const ok = aligned(sig.domain, e.from_domain, adkim, psl);
    if (ok && !e.dkim_aligned) {
      e.dkim_aligned = true;
      e.dkim_domain = normalize_domain(sig.domain);
    } else if (e.dkim_domain.empty()) {
      e.dkim_domain = normalize_domain(sig.domain);
    }
  }
  if (found.state != discovery::status::found) {
    e.result = outcome::none;
    e.error = found.error;
    return e;
  }
  e.rec = found.rec;
  e.policy_domain = found.domain;
  e.organizational = found.organizational;
  e.requested = found.organizational ? found.rec.subdomain_policy() : found.rec.p;
  if (e.spf_aligned || e.dkim_aligned) {
    e.result = outcome::pass;
    return e;
  }
  e.result = outcome::fail;
  e.disposition = e.requested;
  if (e.requested != policy::none && found.rec.pct < 100) {
    unsigned roll = 100;
    if (found.rec.pct > 0) roll = random ? random() : default_random()();
    if (roll >= found.rec.pct) {
      e.sampled_out = true;
      e.disposition = lower(e.requested);
    }
  }
  return e;
}

std::string authentication_results(evaluation const& e) {
  std::string out = "dmarc=";
  out += to_string(e.result);
  if (e.rec) {
    out += " (p=";
    out += to_string(e.rec->p);
    if (e.rec->sp) {
      out += " sp=";
      out += to_string(*e.rec->sp);
    }
    out += " dis=";
    out += to_string(e.disposition);
    out += ')';
  } else if (e.error && (e.result == outcome::permerror || e.result == outcome::temperror)) {
    std::string why = e.error.message();
    for (char& c : why)
      if (c == '(' || c == ')' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = ' ';
    out += " (" + why + ")";
  }
  if (!e.from_domain.empty()) {
    out += " header.from=";
    bool token = true;
    for (char c : e.from_domain) token = token && is_token_char(c);
    if (token) {
      out += e.from_domain;
    } else {
      out += '"';
      for (char c : e.from_domain) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    }
  }
  return out;
}

}  // namespace mailroom::filter::dmarc
