// Tag lists, DKIM-Signature values and key records (RFC 6376 3.2, 3.5, 3.6.1).
#include <algorithm>
#include <ctime>

#include "filter/detail/dkim.hpp"
#include "mailroom/core/base64.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/filter/dkim.hpp"

namespace mailroom::filter::dkim {

namespace {

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::malformed_tag_list: return "malformed tag list";
    case errc::duplicate_tag: return "duplicate tag";
    case errc::missing_tag: return "required tag missing";
    case errc::bad_tag_value: return "malformed tag value";
    case errc::bad_version: return "unsupported version";
    case errc::unknown_algorithm: return "unknown algorithm";
    case errc::bad_base64: return "invalid base64";
    case errc::identity_mismatch: return "i= is not within d=";
    case errc::from_not_signed: return "From is not signed";
    case errc::expired: return "signature expired";
    case errc::too_many_tags: return "tag list too long";
    case errc::header_too_large: return "message header too large";
    case errc::too_many_fields: return "too many header fields";
    case errc::no_from: return "message has no From field";
    case errc::key_not_found: return "no key record";
    case errc::key_unavailable: return "key lookup failed temporarily";
    case errc::bad_key_record: return "malformed key record";
    case errc::key_revoked: return "key revoked";
    case errc::key_type_mismatch: return "key does not fit the signature algorithm";
    case errc::bad_key: return "invalid public key";
    case errc::key_too_small: return "RSA key under 1024 bits";
    case errc::key_too_large: return "RSA key over 8192 bits";
    case errc::body_hash_mismatch: return "body hash mismatch";
    case errc::signature_mismatch: return "signature did not verify";
    case errc::body_length_exceeds: return "l= exceeds the body length";
    case errc::sha1_refused: return "rsa-sha1 is not accepted (RFC 8301)";
    case errc::unsupported_algorithm: return "unsupported algorithm";
    case errc::too_many_signatures: return "signature not evaluated (too many signatures)";
    case errc::bad_private_key: return "invalid RSA private key";
    case errc::crypto_failure: return "cryptographic operation failed";
  }
  return nullptr;
}

constexpr bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_valchar(char c) noexcept { return c >= 0x21 && c <= 0x7e && c != ';'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

std::string strip_ws(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s)
    if (!is_ws(c)) out += c;
  return out;
}

std::optional<std::string_view> find_tag(std::vector<tag> const& tags, std::string_view name) noexcept {
  for (auto const& t : tags)
    if (t.name == name) return t.value;
  return std::nullopt;
}

// A colon-separated list ("a : b:c"), each element trimmed and lower-cased: bad_tag_value for
// an empty element, too_many_tags past `max` elements.
result<std::vector<std::string>> colon_list(std::string_view v, std::size_t max) {
  std::vector<std::string> out;
  for (;;) {
    auto colon = v.find(':');
    auto item = trim(v.substr(0, colon));
    if (item.empty()) return fail(errc::bad_tag_value);
    if (out.size() == max) return fail(errc::too_many_tags);
    out.push_back(text::to_lower(item));
    if (colon == std::string_view::npos) return out;
    v.remove_prefix(colon + 1);
  }
}

result<std::string> decode_b64(std::string_view v) {
  auto r = base64::decode(strip_ws(v));
  if (!r) return fail(errc::bad_base64);
  return r;
}

std::optional<std::int64_t> parse_time(std::string_view v) {
  auto n = text::parse_uint(v, 99'999'999'999ULL);  // RFC 6376 3.5: at most 12 digits in practice
  if (!n) return std::nullopt;
  return static_cast<std::int64_t>(*n);
}

}  // namespace

namespace detail {

// '_' is allowed: selectors use it in practice.
bool valid_domain(std::string_view d) noexcept {
  if (d.empty() || d.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    char const c = d[i];
    if (c == '.') {
      if (label == 0 || d[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '_')) return false;
    if (label == 0 && c == '-') return false;
    if (++label > 63) return false;
  }
  return label != 0 && d.back() != '-';
}

}  // namespace detail

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.dkim", describe, "unknown dkim error");
  return instance;
}

std::string_view to_string(algorithm a) noexcept {
  switch (a) {
    case algorithm::rsa_sha256: return "rsa-sha256";
    case algorithm::rsa_sha1: return "rsa-sha1";
    case algorithm::ed25519_sha256: return "ed25519-sha256";
  }
  return "?";
}

std::string_view to_string(canonicalization c) noexcept { return c == canonicalization::simple ? "simple" : "relaxed"; }

std::string_view to_string(status s) noexcept {
  switch (s) {
    case status::none: return "none";
    case status::pass: return "pass";
    case status::fail: return "fail";
    case status::neutral: return "neutral";
    case status::policy: return "policy";
    case status::permerror: return "permerror";
    case status::temperror: return "temperror";
  }
  return "?";
}

std::string signature::key_name() const { return selector + "._domainkey." + domain; }

std::vector<std::string> default_signed_headers() {
  return {"from",       "to",          "cc",           "subject",     "date",
          "message-id", "reply-to",    "in-reply-to",  "references",  "mime-version",
          "content-type", "content-transfer-encoding"};
}

result<std::vector<tag>> parse_tag_list(std::string_view text, limits const& lim) {
  if (text.size() > lim.max_tag_list) return fail(errc::too_many_tags);
  std::vector<tag> tags;
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < text.size() && is_ws(text[i])) ++i;
  };
  for (;;) {
    skip_ws();
    if (i == text.size()) break;  // empty list, or a trailing ';'
    std::size_t const name_start = i;
    if (!is_alpha(text[i])) return fail(errc::malformed_tag_list);
    while (i < text.size() && (is_alpha(text[i]) || is_digit(text[i]) || text[i] == '_')) ++i;
    std::string_view const name = text.substr(name_start, i - name_start);
    skip_ws();
    if (i == text.size() || text[i] != '=') return fail(errc::malformed_tag_list);
    ++i;
    std::size_t const value_start = i;
    while (i < text.size() && text[i] != ';') {
      if (!is_valchar(text[i]) && !is_ws(text[i])) return fail(errc::malformed_tag_list);
      ++i;
    }
    std::string_view const value = trim(text.substr(value_start, i - value_start));
    if (find_tag(tags, name)) return fail(errc::duplicate_tag);
    if (tags.size() == lim.max_tags) return fail(errc::too_many_tags);
    tags.push_back({name, value});
    if (i == text.size()) break;
    ++i;  // ';'
  }
  return tags;
}

result<signature> parse_signature(std::string_view value, std::optional<std::int64_t> now, limits const& lim) {
  auto parsed = parse_tag_list(value, lim);
  if (!parsed) return fail(parsed.error());
  auto const& tags = *parsed;
  for (auto required : {"v", "a", "b", "bh", "d", "h", "s"})
    if (!find_tag(tags, required)) return fail(errc::missing_tag);

  signature sig;
  if (*find_tag(tags, "v") != "1") return fail(errc::bad_version);

  auto const a = text::to_lower(*find_tag(tags, "a"));
  if (a == "rsa-sha256") sig.alg = algorithm::rsa_sha256;
  else if (a == "rsa-sha1") sig.alg = algorithm::rsa_sha1;
  else if (a == "ed25519-sha256") sig.alg = algorithm::ed25519_sha256;
  else return fail(errc::unknown_algorithm);

  if (auto c = find_tag(tags, "c")) {
    auto const slash = c->find('/');
    auto canon = [](std::string_view s) -> std::optional<canonicalization> {
      if (text::iequals(s, "simple")) return canonicalization::simple;
      if (text::iequals(s, "relaxed")) return canonicalization::relaxed;
      return std::nullopt;
    };
    auto h = canon(c->substr(0, slash));
    auto b = slash == std::string_view::npos ? std::optional(canonicalization::simple) : canon(c->substr(slash + 1));
    if (!h || !b) return fail(errc::bad_tag_value);
    sig.header_canon = *h;
    sig.body_canon = *b;
  }

  auto b = decode_b64(*find_tag(tags, "b"));
  if (!b) return fail(b.error());
  if (b->empty()) return fail(errc::bad_tag_value);
  sig.b = std::move(*b);
  sig.b_text = strip_ws(*find_tag(tags, "b"));
  auto bh = decode_b64(*find_tag(tags, "bh"));
  if (!bh) return fail(bh.error());
  if (bh->empty()) return fail(errc::bad_tag_value);
  sig.bh = std::move(*bh);

  sig.domain = text::to_lower(*find_tag(tags, "d"));
  sig.selector = text::to_lower(*find_tag(tags, "s"));
  if (!detail::valid_domain(sig.domain) || !detail::valid_domain(sig.selector)) return fail(errc::bad_tag_value);

  auto h = colon_list(*find_tag(tags, "h"), lim.max_signed_headers);
  if (!h) return fail(h.error());
  for (auto const& name : *h)
    for (char ch : name)
      if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) return fail(errc::bad_tag_value);
  if (std::find(h->begin(), h->end(), "from") == h->end()) return fail(errc::from_not_signed);
  sig.signed_headers = std::move(*h);

  if (auto i = find_tag(tags, "i")) {
    auto const at = i->rfind('@');
    if (at == std::string_view::npos) return fail(errc::bad_tag_value);
    auto const idom = text::to_lower(i->substr(at + 1));
    if (idom != sig.domain && !(idom.size() > sig.domain.size() && idom.ends_with("." + sig.domain)))
      return fail(errc::identity_mismatch);
    sig.identity = std::string(*i);
  } else {
    sig.identity = "@" + sig.domain;
  }

  if (auto l = find_tag(tags, "l")) {
    auto n = text::parse_uint(*l);
    if (!n) return fail(errc::bad_tag_value);
    sig.body_length = *n;
  }
  if (auto q = find_tag(tags, "q")) {
    auto methods = colon_list(*q, lim.max_tags);
    if (!methods || std::find(methods->begin(), methods->end(), "dns/txt") == methods->end())
      return fail(errc::bad_tag_value);
  }
  if (auto t = find_tag(tags, "t")) {
    sig.timestamp = parse_time(*t);
    if (!sig.timestamp) return fail(errc::bad_tag_value);
  }
  if (auto x = find_tag(tags, "x")) {
    sig.expiration = parse_time(*x);
    if (!sig.expiration) return fail(errc::bad_tag_value);
    if (sig.timestamp && *sig.expiration < *sig.timestamp) return fail(errc::expired);
    if (now && *sig.expiration < *now) return fail(errc::expired);
  }
  if (auto z = find_tag(tags, "z")) sig.copied_headers = std::string(*z);
  return sig;
}

result<key_record> parse_key_record(std::string_view txt, limits const& lim) {
  auto parsed = parse_tag_list(txt, lim);
  if (!parsed) return fail(parsed.error());
  auto const& tags = *parsed;
  key_record key;
  if (auto v = find_tag(tags, "v"); v && (tags.front().name != "v" || *v != "DKIM1")) return fail(errc::bad_version);
  if (auto k = find_tag(tags, "k")) {
    if (text::iequals(*k, "rsa")) key.type = key_type::rsa;
    else if (text::iequals(*k, "ed25519")) key.type = key_type::ed25519;
    else return fail(errc::unknown_algorithm);
  }
  if (auto h = find_tag(tags, "h")) {
    auto list = colon_list(*h, lim.max_tags);
    if (!list) return fail(errc::bad_key_record);
    key.hashes = std::move(*list);
  }
  if (auto s = find_tag(tags, "s")) {
    auto list = colon_list(*s, lim.max_tags);
    if (!list || (std::find(list->begin(), list->end(), "email") == list->end() &&
                  std::find(list->begin(), list->end(), "*") == list->end()))
      return fail(errc::bad_key_record);
  }
  if (auto t = find_tag(tags, "t"); t && !t->empty()) {
    auto flags = colon_list(*t, lim.max_tags);
    if (!flags) return fail(errc::bad_key_record);
    for (auto const& f : *flags) {
      if (f == "y") key.testing = true;
      else if (f == "s") key.strict_identity = true;
    }
  }
  auto p = find_tag(tags, "p");
  if (!p) return fail(errc::missing_tag);
  auto der = decode_b64(*p);
  if (!der) return fail(der.error());
  key.public_key = std::move(*der);
  return key;
}

}  // namespace mailroom::filter::dkim
