// The DKIM verifier (RFC 6376 6.1) and Authentication-Results formatting (RFC 8601).
#include <algorithm>
#include <ctime>

#include "filter/detail/dkim.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/filter/dkim.hpp"

namespace mailroom::filter::dkim {

namespace {

// The field with the value of its b= tag removed (RFC 6376 3.7: b= treated as empty), as the
// signer hashed it. Whitespace around the value stays.
std::string without_b_value(std::string_view field, limits const& lim) {
  auto const colon = field.find(':');
  auto tags = parse_tag_list(field.substr(colon + 1), lim);
  if (!tags) return std::string(field);  // not reached: the field parsed as a signature
  for (auto const& t : *tags)
    if (t.name == "b") {
      auto const at = static_cast<std::size_t>(t.value.data() - field.data());
      return std::string(field.substr(0, at)) + std::string(field.substr(at + t.value.size()));
    }
  return std::string(field);
}

std::string with_detail(errc e, std::string_view detail) {
  std::string r = make_error_code(e).message();
  if (!detail.empty()) r += std::string(" (") + std::string(detail) + ")";
  return r;
}

}  // namespace

struct verifier::impl {
  impl(limits l, std::int64_t t) : lim(l), now(t), head(l) {}

  void header_done() {
    if (head.error()) return;
    for (std::size_t i = 0; i < head.fields().size(); ++i) {
      auto const& f = head.fields()[i];
      if (!text::iequals(head.name(f), "dkim-signature")) continue;
      auto const field = head.text(f);
      if (entries.size() >= lim.max_signatures) {
        entries.push_back({fail(errc::too_many_signatures), {}});
        states.emplace_back();
        continue;
      }
      auto sig = parse_signature(field.substr(field.find(':') + 1), now, lim);
      std::string name = sig ? sig->key_name() : std::string();
      if (sig) states.push_back(state{i, body_hasher(sig->body_canon, sig->alg, sig->body_length), {}});
      else states.emplace_back();
      entries.push_back({std::move(sig), std::move(name)});
    }
  }

  struct state {
    std::size_t field = 0;
    body_hasher hasher;
    std::string body_digest;
  };

  limits lim;
  std::int64_t now;
  detail::header_block head;
  std::vector<entry> entries;
  std::vector<std::optional<state>> states;
  bool finished = false;
};

verifier::verifier(limits lim, std::optional<std::int64_t> now)
    : p_(std::make_unique<impl>(lim, now ? *now : static_cast<std::int64_t>(std::time(nullptr)))) {}
verifier::~verifier() = default;

void verifier::feed(std::string_view bytes) {
  if (p_->finished) return;
  bool const was_complete = p_->head.complete();
  auto body = p_->head.feed(bytes);
  if (!was_complete && p_->head.complete()) p_->header_done();
  if (body.empty()) return;
  for (auto& s : p_->states)
    if (s) s->hasher.update(body);
}

void verifier::finish() {
  if (p_->finished) return;
  if (!p_->head.complete()) {
    p_->head.finish();
    p_->header_done();
  }
  for (auto& s : p_->states)
    if (s) s->body_digest = s->hasher.finish();
  p_->finished = true;
}

std::error_code verifier::error() const noexcept { return p_->head.error(); }
std::vector<verifier::entry> const& verifier::signatures() const noexcept { return p_->entries; }
bool verifier::header_complete() const noexcept { return p_->head.complete(); }

verification verifier::verify(std::size_t index, key_answer const& key) const {
  verification v;
  auto outcome = [&](status s, errc e, std::string_view detail = {}) {
    v.status = s;
    v.why = make_error_code(e);
    v.reason = with_detail(e, detail);
    return v;
  };
  if (auto ec = error()) {
    v.status = status::permerror;
    v.why = ec;
    v.reason = ec.message();
    return v;
  }
  if (!p_->finished || index >= p_->entries.size()) return outcome(status::permerror, errc::missing_tag, "no such signature");
  auto const& e = p_->entries[index];
  if (!e.parsed) {
    v.status = e.parsed.error() == errc::too_many_signatures ? status::neutral : status::permerror;
    v.why = e.parsed.error();
    v.reason = v.why.message();
    return v;
  }
  signature const& sig = *e.parsed;
  auto const& st = *p_->states[index];
  v.domain = sig.domain;
  v.selector = sig.selector;
  v.identity = sig.identity;
  v.b_text = sig.b_text;

  if (sig.alg == algorithm::rsa_sha1) return outcome(status::permerror, errc::sha1_refused);
  if (sig.body_length && *sig.body_length > st.hasher.canonical_length())
    return outcome(status::permerror, errc::body_length_exceeds);

  if (key.result == key_answer::outcome::temporary_failure) return outcome(status::temperror, errc::key_unavailable);
  if (key.result == key_answer::outcome::not_found || key.records.empty())
    return outcome(status::permerror, errc::key_not_found);

  // The first record that parses as a DKIM key is the key (RFC 6376 6.1.2 lets the verifier pick).
  std::optional<key_record> rec;
  std::error_code record_error = make_error_code(errc::bad_key_record);
  for (std::size_t i = 0; i < key.records.size() && i < p_->lim.max_key_records && !rec; ++i) {
    auto r = parse_key_record(key.records[i], p_->lim);
    if (r) rec = std::move(*r);
    else record_error = r.error();
  }
  if (!rec) {
    v.status = status::permerror;
    v.why = record_error;
    v.reason = "key record: " + record_error.message();
    return v;
  }
  v.testing = rec->testing;
  if (rec->public_key.empty()) return outcome(status::permerror, errc::key_revoked);
  bool const ed = sig.alg == algorithm::ed25519_sha256;
  if ((rec->type == key_type::ed25519) != ed) return outcome(status::permerror, errc::key_type_mismatch);
  if (!rec->hashes.empty() && std::find(rec->hashes.begin(), rec->hashes.end(), "sha256") == rec->hashes.end())
    return outcome(status::permerror, errc::key_type_mismatch, "key h= excludes sha256");
  if (rec->strict_identity) {
    auto const idom = text::to_lower(std::string_view(sig.identity).substr(sig.identity.rfind('@') + 1));
    if (idom != sig.domain) return outcome(status::permerror, errc::identity_mismatch, "key has t=s");
  }

  if (st.body_digest != sig.bh) return outcome(status::fail, errc::body_hash_mismatch);
  if (ed) return outcome(status::neutral, errc::unsupported_algorithm, "ed25519-sha256: mbedTLS has no Ed25519; body hash matched");

  auto const& head = p_->head;
  detail::digest h(sig.alg);
  h.update(head.signed_fields(sig.signed_headers, sig.header_canon));
  auto const self = without_b_value(head.text(head.fields()[st.field]), p_->lim);
  h.update(canonicalize_header(sig.header_canon, self));
  auto ec = detail::rsa_verify(rec->public_key, h.finish(), sig.b);
  if (!ec) {
    v.status = status::pass;
    return v;
  }
  auto const why = static_cast<errc>(ec.value());
  if (why == errc::key_too_small) return outcome(status::policy, why);
  if (why == errc::signature_mismatch) return outcome(status::fail, why);
  return outcome(status::permerror, why);
}

std::string format_result(verification const& v) {
  std::string out = "dkim=" + std::string(to_string(v.status));
  if (v.status != status::pass && v.status != status::none && !v.reason.empty()) {
    out += " reason=\"";
    for (char c : v.reason) {
      if (c == '"' || c == '\\') out += '\\';
      out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    }
    out += '"';
  }
  if (v.testing) out += " (test mode)";
  if (!v.domain.empty()) out += " header.d=" + v.domain;
  if (!v.selector.empty()) out += " header.s=" + v.selector;
  if (!v.b_text.empty()) {
    auto const prefix = std::string_view(v.b_text).substr(0, 8);
    bool const token = prefix.find_first_of("/=") == std::string_view::npos;
    out += " header.b=" + (token ? std::string(prefix) : "\"" + std::string(prefix) + "\"");
  }
  return out;
}

}  // namespace mailroom::filter::dkim
