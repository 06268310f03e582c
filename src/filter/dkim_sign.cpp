// The DKIM signer (RFC 6376 5) and the per-domain signing table.
#include <algorithm>

#include "filter/detail/dkim.hpp"
#include "mailroom/core/base64.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/filter/dkim.hpp"

namespace mailroom::filter::dkim {

namespace {

constexpr std::size_t fold_width = 78;

// Builds a header field folded at fold_width columns: a fold is CRLF TAB, placed only where
// RFC 6376 allows FWS (between tags, around ':' in h=, inside base64).
class folded_field {
 public:
  explicit folded_field(std::string_view start) : out_(start), col_(start.size()) {}

  /// A piece that is not broken; `space` puts a SP before it when it stays on the line.
  void word(std::string_view w, bool space) {
    if (col_ + w.size() + (space ? 1 : 0) > fold_width && col_ > 1) fold();
    else if (space) put(" ");
    put(w);
  }
  /// Base64 that may be broken anywhere except before its first character.
  void base64(std::string_view b) {
    for (std::size_t i = 0; i < b.size();) {
      if (i > 0 && col_ >= fold_width) fold();
      std::size_t const room = col_ < fold_width ? fold_width - col_ : 1;
      auto const piece = b.substr(i, std::max<std::size_t>(room, 1));
      put(piece);
      i += piece.size();
    }
  }
  std::string const& text() const noexcept { return out_; }

 private:
  void fold() {
    out_ += "\r\n\t";
    col_ = 1;
  }
  void put(std::string_view s) {
    out_ += s;
    col_ += s.size();
  }
  std::string out_;
  std::size_t col_;
};

std::string normal_domain(std::string_view d) {
  while (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return text::to_lower(d);
}

}  // namespace

struct signer::impl {
  impl(sign_options o, std::shared_ptr<private_key const> k, limits l)
      : opts(std::move(o)), key(std::move(k)), lim(l), head(l), body(opts.body_canon, algorithm::rsa_sha256) {}

  result<std::string> finish();

  sign_options opts;
  std::shared_ptr<private_key const> key;
  limits lim;
  detail::header_block head;
  body_hasher body;
};

result<std::string> signer::impl::finish() {
  head.finish();
  if (auto ec = head.error()) return fail(ec);
  if (!key) return fail(errc::bad_private_key);
  auto const domain = normal_domain(opts.domain);
  auto const selector = normal_domain(opts.selector);
  if (!detail::valid_domain(domain) || !detail::valid_domain(selector)) return fail(errc::bad_tag_value);
  if (!opts.identity.empty()) {
    auto const at = opts.identity.rfind('@');
    if (at == std::string::npos) return fail(errc::bad_tag_value);
    auto const idom = normal_domain(std::string_view(opts.identity).substr(at + 1));
    if (idom != domain && !idom.ends_with("." + domain)) return fail(errc::identity_mismatch);
    for (char c : opts.identity)
      if (static_cast<unsigned char>(c) <= 0x20 || c == ';' || static_cast<unsigned char>(c) >= 0x7f)
        return fail(errc::bad_tag_value);
  }
  if (opts.timestamp && opts.expiration && *opts.expiration <= *opts.timestamp) return fail(errc::expired);
  if (head.count("from") == 0) return fail(errc::no_from);

  // h=: each listed name once per field of that name, From first; then the oversigned names once
  // more, so that a field of that name added later breaks the signature.
  std::vector<std::string> names{"from"};
  for (auto const& n : opts.headers) {
    auto lower = text::to_lower(n);
    if (lower.empty() || lower.find_first_of(": \t\r\n;") != std::string::npos) return fail(errc::bad_tag_value);
    if (std::find(names.begin(), names.end(), lower) == names.end()) names.push_back(std::move(lower));
  }
  std::vector<std::string> h;
  for (auto const& n : names)
    for (std::size_t i = head.count(n); i > 0; --i) h.push_back(n);
  for (auto const& n : names)
    if (std::any_of(opts.oversign.begin(), opts.oversign.end(), [&](auto const& o) { return text::iequals(o, n); }))
      h.push_back(n);
  if (h.size() > lim.max_signed_headers) return fail(errc::too_many_tags);

  folded_field f("DKIM-Signature:");
  f.word("v=1;", true);
  f.word("a=rsa-sha256;", true);
  f.word("c=" + std::string(to_string(opts.header_canon)) + "/" + std::string(to_string(opts.body_canon)) + ";", true);
  f.word("d=" + domain + ";", true);
  f.word("s=" + selector + ";", true);
  if (!opts.identity.empty()) f.word("i=" + opts.identity + ";", true);
  if (opts.timestamp) f.word("t=" + std::to_string(*opts.timestamp) + ";", true);
  if (opts.expiration) f.word("x=" + std::to_string(*opts.expiration) + ";", true);
  for (std::size_t i = 0; i < h.size(); ++i) f.word((i == 0 ? "h=" : ":") + h[i] + (i + 1 == h.size() ? ";" : ""), i == 0);
  auto const body_hash = body.finish();
  if (opts.body_length) f.word("l=" + std::to_string(body.canonical_length()) + ";", true);
  f.word("bh=", true);
  f.base64(base64::encode(body_hash) + ";");
  f.word("b=", true);
  // b= is signed empty: the header hash covers the field as it stands now.
  detail::digest hash(algorithm::rsa_sha256);
  hash.update(head.signed_fields(h, opts.header_canon));
  hash.update(canonicalize_header(opts.header_canon, f.text()));
  auto sig = detail::rsa_sign(*key, hash.finish());
  if (!sig) return fail(sig.error());
  f.base64(base64::encode(*sig));
  return f.text() + "\r\n";
}

signer::signer(sign_options opts, std::shared_ptr<private_key const> key, limits lim)
    : p_(std::make_unique<impl>(std::move(opts), std::move(key), lim)) {}
signer::~signer() = default;

void signer::feed(std::string_view bytes) {
  auto body = p_->head.feed(bytes);
  if (!body.empty()) p_->body.update(body);
}

result<std::string> signer::finish() { return p_->finish(); }

void signing_table::add(std::string_view domain, std::string_view selector, std::shared_ptr<private_key const> key,
                        bool current) {
  auto& d = domains_[normal_domain(domain)];
  auto const sel = normal_domain(selector);
  auto it = std::find_if(d.keys.begin(), d.keys.end(), [&](entry const& e) { return e.selector == sel; });
  if (it != d.keys.end()) it->key = std::move(key);
  else it = d.keys.insert(d.keys.end(), entry{normal_domain(domain), sel, std::move(key)});
  if (current || d.keys.size() == 1) d.current = static_cast<std::size_t>(it - d.keys.begin());
}

result<void> signing_table::make_current(std::string_view domain, std::string_view selector) {
  auto d = domains_.find(normal_domain(domain));
  if (d == domains_.end()) return fail(errc::key_not_found);
  auto const sel = normal_domain(selector);
  for (std::size_t i = 0; i < d->second.keys.size(); ++i)
    if (d->second.keys[i].selector == sel) {
      d->second.current = i;
      return {};
    }
  return fail(errc::key_not_found);
}

void signing_table::remove(std::string_view domain, std::string_view selector) {
  auto d = domains_.find(normal_domain(domain));
  if (d == domains_.end()) return;
  auto& keys = d->second.keys;
  auto const sel = normal_domain(selector);
  auto it = std::find_if(keys.begin(), keys.end(), [&](entry const& e) { return e.selector == sel; });
  if (it == keys.end()) return;
  auto const i = static_cast<std::size_t>(it - keys.begin());
  keys.erase(it);
  if (keys.empty()) {
    domains_.erase(d);
    return;
  }
  if (i == d->second.current) d->second.current = keys.size() - 1;
  else if (i < d->second.current) --d->second.current;
}

signing_table::entry const* signing_table::find(std::string_view domain) const {
  auto d = domains_.find(normal_domain(domain));
  if (d == domains_.end()) return nullptr;
  return &d->second.keys[d->second.current];
}

std::vector<signing_table::entry> signing_table::selectors(std::string_view domain) const {
  auto d = domains_.find(normal_domain(domain));
  return d == domains_.end() ? std::vector<entry>{} : d->second.keys;
}

}  // namespace mailroom::filter::dkim
