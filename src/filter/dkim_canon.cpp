// Canonicalisation (RFC 6376 3.4), body hashing as the body streams, and the message header
// split into fields.
#include <mbedtls/version.h>  // first: the build configuration in 2.x and 3.x alike

#include <mbedtls/md.h>

#include <cstring>
#include <stdexcept>

#include "filter/detail/dkim.hpp"
#include "mailroom/core/text.hpp"
#include "mailroom/filter/dkim.hpp"

namespace mailroom::filter::dkim {

namespace {

constexpr bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }

// The body canonicaliser's state between chunks. Empty lines are held back until a line with
// content follows (trailing empty lines are dropped); relaxed whitespace is held until content
// follows on the same line (trailing whitespace is dropped, runs become one SP).
class body_canon {
 public:
  explicit body_canon(canonicalization c) : relaxed_(c == canonicalization::relaxed) {}

  void update(std::string_view in, std::string& out) {
    std::size_t i = 0;
    while (i < in.size()) {
      if (cr_) {
        cr_ = false;
        if (in[i] == '\n') {
          end_line(out);
          ++i;
          continue;
        }
        content("\r", out);  // a bare CR is content
      }
      // The run of ordinary octets up to the next CR (or, relaxed, whitespace) goes out whole.
      std::size_t j = i;
      if (relaxed_) {
        while (j < in.size() && in[j] != '\r' && !is_wsp(in[j])) ++j;
      } else {
        auto const* cr = static_cast<char const*>(std::memchr(in.data() + i, '\r', in.size() - i));
        j = cr ? static_cast<std::size_t>(cr - in.data()) : in.size();
      }
      if (j > i) {
        content(in.substr(i, j - i), out);
        i = j;
        continue;
      }
      if (in[i++] == '\r') cr_ = true;
      else wsp_ = true;
    }
  }

  void finish(std::string& out) {
    if (cr_) content("\r", out);
    cr_ = false;
    if (line_has_content_) end_line(out);
    if (!relaxed_ && !emitted_) out += "\r\n";  // simple: an empty body is one CRLF
    emitted_ = true;
  }

 private:
  void content(std::string_view run, std::string& out) {
    if (!line_has_content_) {
      for (; held_ > 0; --held_) out += "\r\n";
      line_has_content_ = true;
    }
    if (wsp_) out += ' ';
    wsp_ = false;
    out += run;
  }
  void end_line(std::string& out) {
    if (line_has_content_) {
      out += "\r\n";
      emitted_ = true;
    } else {
      ++held_;
    }
    line_has_content_ = false;
    wsp_ = false;
  }

  bool relaxed_;
  bool cr_ = false;
  bool wsp_ = false;
  bool line_has_content_ = false;
  bool emitted_ = false;
  std::uint64_t held_ = 0;
};

}  // namespace

std::string canonicalize_header(canonicalization c, std::string_view field) {
  if (c == canonicalization::simple) return std::string(field);
  auto const colon = field.find(':');
  std::string_view const name = field.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1);
  std::string out;  // the name unfolded, lower case, without the whitespace before the colon
  for (char ch : name)
    if (ch != '\r' && ch != '\n') out += text::to_lower(ch);
  while (!out.empty() && is_wsp(out.back())) out.pop_back();
  if (colon == std::string_view::npos) return out;
  out += ':';
  bool wsp = false, started = false;
  for (char ch : value) {
    if (ch == '\r' || ch == '\n') continue;  // unfold
    if (is_wsp(ch)) {
      wsp = started;  // leading whitespace is dropped
      continue;
    }
    if (wsp) out += ' ';
    wsp = false;
    started = true;
    out += ch;
  }
  return out;  // trailing whitespace was never written
}

std::string canonicalize_body(canonicalization c, std::string_view body) {
  body_canon canon(c);
  std::string out;
  canon.update(body, out);
  canon.finish(out);
  return out;
}

struct body_hasher::impl {
  impl(canonicalization c, algorithm a, std::optional<std::uint64_t> length) : canon(c), hash(a), limit(length) {}
  void hash_some(std::string_view canonical) {
    total += canonical.size();
    if (limit) canonical = canonical.substr(0, hashed < *limit ? *limit - hashed : 0);
    hashed += canonical.size();
    hash.update(canonical);
  }
  body_canon canon;
  detail::digest hash;
  std::optional<std::uint64_t> limit;
  std::uint64_t total = 0, hashed = 0;
  std::string scratch;
};

body_hasher::body_hasher(canonicalization c, algorithm a, std::optional<std::uint64_t> length)
    : p_(std::make_unique<impl>(c, a, length)) {}
body_hasher::~body_hasher() = default;
body_hasher::body_hasher(body_hasher&&) noexcept = default;
body_hasher& body_hasher::operator=(body_hasher&&) noexcept = default;

void body_hasher::update(std::string_view chunk) {
  p_->scratch.clear();
  p_->canon.update(chunk, p_->scratch);
  p_->hash_some(p_->scratch);
}

std::string body_hasher::finish() {
  p_->scratch.clear();
  p_->canon.finish(p_->scratch);
  p_->hash_some(p_->scratch);
  std::string().swap(p_->scratch);
  return p_->hash.finish();
}

std::uint64_t body_hasher::canonical_length() const noexcept { return p_->total; }

namespace detail {

struct digest::state {
  mbedtls_md_context_t ctx;
  std::size_t size = 0;
  state() { mbedtls_md_init(&ctx); }
  ~state() { mbedtls_md_free(&ctx); }
};

digest::digest(algorithm a) : s_(std::make_unique<state>()) {
  auto const* info = mbedtls_md_info_from_type(a == algorithm::rsa_sha1 ? MBEDTLS_MD_SHA1 : MBEDTLS_MD_SHA256);
  if (!info || mbedtls_md_setup(&s_->ctx, info, 0) != 0 || mbedtls_md_starts(&s_->ctx) != 0)
    throw std::runtime_error("mailroom: SHA-256 is unavailable in this mbedTLS build");
  s_->size = mbedtls_md_get_size(info);
}
digest::~digest() = default;

void digest::update(std::string_view bytes) {
  if (!bytes.empty()) (void)mbedtls_md_update(&s_->ctx, reinterpret_cast<unsigned char const*>(bytes.data()), bytes.size());
}

std::string digest::finish() {
  unsigned char out[MBEDTLS_MD_MAX_SIZE];
  (void)mbedtls_md_finish(&s_->ctx, out);
  return std::string(reinterpret_cast<char const*>(out), s_->size);
}

std::string_view header_block::feed(std::string_view bytes) {
  if (error_) return {};
  if (complete_) return bytes;
  std::size_t const old = buf_.size();
  buf_.append(bytes);
  std::size_t end = std::string_view::npos;
  if (old < 2 && buf_.size() >= 2 && buf_.compare(0, 2, "\r\n") == 0) end = 0;  // no header at all
  else end = buf_.find("\r\n\r\n", scan_);
  if (end == std::string_view::npos) {
    scan_ = buf_.size() >= 3 ? buf_.size() - 3 : 0;
    if (buf_.size() > lim_.max_header_bytes) {
      error_ = make_error_code(errc::header_too_large);
      std::string().swap(buf_);
    }
    return {};
  }
  std::size_t const body_start = end == 0 ? 2 : end + 4;
  body_.assign(buf_, body_start);
  buf_.resize(end == 0 ? 0 : end + 2);
  split(buf_.size());
  return body_;
}

void header_block::finish() {
  if (complete_ || error_) return;
  split(buf_.size());
}

void header_block::split(std::size_t header_end) {
  complete_ = true;
  if (header_end > lim_.max_header_bytes) {
    error_ = make_error_code(errc::header_too_large);
    return;
  }
  std::string_view const all(buf_.data(), header_end);
  std::size_t pos = 0;
  while (pos < all.size()) {
    auto crlf = all.find("\r\n", pos);
    std::size_t const line_end = crlf == std::string_view::npos ? all.size() : crlf;
    bool const continuation = is_wsp(all[pos]);
    if (continuation && !fields_.empty()) {
      fields_.back().end = line_end;
    } else {
      if (fields_.size() == lim_.max_header_fields) {
        error_ = make_error_code(errc::too_many_fields);
        fields_.clear();
        return;
      }
      field f;
      f.begin = pos;
      f.end = line_end;
      auto const colon = all.substr(pos, line_end - pos).find(':');
      f.name_end = colon == std::string_view::npos ? pos : pos + colon;
      while (f.name_end > f.begin && is_wsp(all[f.name_end - 1])) --f.name_end;
      fields_.push_back(f);
    }
    pos = crlf == std::string_view::npos ? all.size() : crlf + 2;
  }
}

std::size_t header_block::count(std::string_view n) const noexcept {
  std::size_t k = 0;
  for (auto const& f : fields_)
    if (text::iequals(name(f), n)) ++k;
  return k;
}

std::string header_block::signed_fields(std::vector<std::string> const& names, canonicalization c) const {
  std::vector<bool> taken(fields_.size(), false);
  std::string out;
  for (auto const& n : names) {
    for (std::size_t i = fields_.size(); i-- > 0;) {
      if (taken[i] || !text::iequals(name(fields_[i]), n)) continue;
      taken[i] = true;
      out += canonicalize_header(c, text(fields_[i]));
      out += "\r\n";
      break;
    }
  }
  return out;
}

}  // namespace detail

}  // namespace mailroom::filter::dkim
