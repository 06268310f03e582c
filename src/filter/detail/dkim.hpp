// Internals shared by the DKIM sources (private to src/filter): the message header as fields,
// digests and RSA through mbedTLS.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/filter/dkim.hpp"

namespace mailroom::filter::dkim::detail {

/// Sub-domain labels (letters, digits, '-', '_') joined by single dots, at most 253 octets.
bool valid_domain(std::string_view d) noexcept;

/// A running SHA-256 (or SHA-1 for rsa-sha1) digest.
class digest {
 public:
  explicit digest(algorithm a);
  ~digest();
  digest(digest const&) = delete;
  digest& operator=(digest const&) = delete;
  void update(std::string_view bytes);
  std::string finish();

 private:
  struct state;
  std::unique_ptr<state> s_;
};

/// The message header, collected up to the empty line and split into fields. Everything after
/// the empty line is handed back as body.
class header_block {
 public:
  explicit header_block(limits const& lim) : lim_(lim) {}

  struct field {
    std::size_t begin = 0, end = 0;  ///< the field in text(), without its final CRLF
    std::size_t name_end = 0;        ///< the name is [begin, name_end) (trailing WSP excluded)
  };

  /// Takes message bytes; returns the part that is body (a view valid until the next call).
  std::string_view feed(std::string_view bytes);
  /// End of input: a header without an empty line after it is the whole message.
  void finish();

  bool complete() const noexcept { return complete_; }
  std::error_code error() const noexcept { return error_; }
  std::vector<field> const& fields() const noexcept { return fields_; }
  std::string_view text(field const& f) const noexcept { return std::string_view(buf_).substr(f.begin, f.end - f.begin); }
  std::string_view name(field const& f) const noexcept {
    return std::string_view(buf_).substr(f.begin, f.name_end - f.begin);
  }
  std::size_t count(std::string_view name) const noexcept;

  /// The canonical header fields h= selects (each name takes the lowest field of that name not
  /// yet taken; a name with none left adds nothing), each followed by CRLF.
  std::string signed_fields(std::vector<std::string> const& names, canonicalization c) const;

 private:
  void split(std::size_t header_end);

  limits lim_;
  std::string buf_;
  std::string body_;
  std::size_t scan_ = 0;
  bool complete_ = false;
  std::error_code error_;
  std::vector<field> fields_;
};

/// Verifies an RSA PKCS#1 v1.5 signature over a SHA-256 digest with a key record's p=
/// (SubjectPublicKeyInfo or bare RSAPublicKey DER). Errors: bad_key, key_too_small,
/// key_too_large, signature_mismatch.
std::error_code rsa_verify(std::string_view public_key, std::string_view sha256, std::string_view sig);

/// Signs a SHA-256 digest. Errors: crypto_failure.
result<std::string> rsa_sign(private_key const& key, std::string_view sha256);

}  // namespace mailroom::filter::dkim::detail
