// DKIM signatures (RFC 6376) verified and made without I/O: the caller feeds the message, looks
// up the key records this code names (selector._domainkey.domain TXT) and hands the answers back.
//
// Input contract: a message is fed as it travels in SMTP DATA after un-dot-stuffing, header then
// body, lines ended by CRLF, in chunks of any size (a CRLF may be split across two chunks). A
// bare CR or LF is not a line end; it is hashed as the octet it is.
//
// Cryptography is mbedTLS's. rsa-sha256 is verified and made. rsa-sha1 is refused (RFC 8301:
// permerror, errc::sha1_refused); RSA keys under 1024 bits are refused (policy,
// errc::key_too_small) and over 8192 bits not used (permerror, errc::key_too_large).
// ed25519-sha256 (RFC 8463) is parsed and its body hash computed and compared, but mbedTLS (2.28,
// and 3.x up to now) has no Ed25519: such a signature ends as neutral with
// errc::unsupported_algorithm when its body hash matches, as fail with errc::body_hash_mismatch
// when it does not.
//
// Limits: everything a sender controls is bounded (see limits); a message over a limit is
// reported (verifier::error()), never buffered without bound. Only the header is kept in memory;
// the body is hashed as it streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroom::filter::dkim {

enum class errc {
  // Syntax of tag lists, signatures and key records (RFC 6376 3.2, 3.5, 3.6.1).
  malformed_tag_list = 1,  ///< not tag=value pairs separated by ';'
  duplicate_tag,           ///< a tag appears twice
  missing_tag,             ///< a required tag is absent
  bad_tag_value,           ///< a tag's value has the wrong syntax
  bad_version,             ///< v= is not 1 (signature) or DKIM1 (key record)
  unknown_algorithm,       ///< a= or k= names an algorithm this code does not know
  bad_base64,              ///< b=, bh= or p= is not base64
  identity_mismatch,       ///< i= is not within d=, or the key's t=s forbids a subdomain
  from_not_signed,         ///< h= does not list From
  expired,                 ///< x= is in the past, or before t=
  too_many_tags,           ///< over limits::max_tags, or a tag list over limits::max_tag_list
  // Message limits.
  header_too_large,        ///< the header is over limits::max_header_bytes
  too_many_fields,         ///< the header has over limits::max_header_fields fields
  no_from,                 ///< (signing) the message has no From field
  // Key lookup and key records.
  key_not_found,           ///< no key record at the name (NXDOMAIN, no TXT)
  key_unavailable,         ///< the lookup failed for now (temperror)
  bad_key_record,          ///< the TXT record is not a usable DKIM key record
  key_revoked,             ///< p= is empty
  key_type_mismatch,       ///< k= or h= of the key does not fit a= of the signature
  bad_key,                 ///< p= does not hold a public key of the type named
  key_too_small,           ///< RSA under 1024 bits
  key_too_large,           ///< RSA over 8192 bits
  // Outcomes of a verification.
  body_hash_mismatch,      ///< the body does not hash to bh=
  signature_mismatch,      ///< the header hash does not verify against b=
  body_length_exceeds,     ///< l= is larger than the body
  sha1_refused,            ///< rsa-sha1 (RFC 8301)
  unsupported_algorithm,   ///< ed25519-sha256: mbedTLS has no Ed25519
  too_many_signatures,     ///< the signature was beyond limits::max_signatures and not evaluated
  // Signing and key generation.
  bad_private_key,         ///< the PEM does not hold an RSA private key
  crypto_failure,          ///< mbedTLS failed (random source, signing)
};
std::error_category const& category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

// ---------------------------------------------------------------------------------------------
// Tag lists (RFC 6376 3.2)

struct limits {
  std::size_t max_tag_list = 64 * 1024;        ///< octets of one tag list (signature or key record)
  std::size_t max_tags = 64;                   ///< tags in one list
  std::size_t max_signed_headers = 256;        ///< names in h=
  std::size_t max_header_bytes = 1024 * 1024;  ///< the whole message header
  std::size_t max_header_fields = 1000;        ///< fields in the message header
  std::size_t max_signatures = 5;              ///< DKIM-Signature fields evaluated (the first ones)
  std::size_t max_key_records = 5;             ///< TXT records tried for one key
};

/// One tag=value; views into the parsed text. value has its leading and trailing whitespace
/// removed (inner folding whitespace is kept).
struct tag {
  std::string_view name;
  std::string_view value;
};

/// Parses tag-list = tag-spec *(";" tag-spec) [";"]. Whitespace (SP, HTAB, CR, LF) is allowed
/// around names, '=' and values; values are VALCHARs (%x21-3A / %x3C-7E) and inner whitespace.
/// Errors: malformed_tag_list, duplicate_tag, too_many_tags.
result<std::vector<tag>> parse_tag_list(std::string_view text, limits const& lim = {});

// ---------------------------------------------------------------------------------------------
// Signatures and key records

enum class algorithm { rsa_sha256, rsa_sha1, ed25519_sha256 };
enum class canonicalization { simple, relaxed };
enum class key_type { rsa, ed25519 };

std::string_view to_string(algorithm a) noexcept;
std::string_view to_string(canonicalization c) noexcept;

struct signature {
  algorithm alg = algorithm::rsa_sha256;
  canonicalization header_canon = canonicalization::simple;
  canonicalization body_canon = canonicalization::simple;
  std::string domain;                        ///< d=, lower case
  std::string selector;                      ///< s=, lower case
  std::vector<std::string> signed_headers;   ///< h=, lower case, in order
  std::string identity;                      ///< i= as given; "@" + d= when absent
  std::string b;                             ///< b= decoded
  std::string b_text;                        ///< b= as base64 without whitespace
  std::string bh;                            ///< bh= decoded
  std::optional<std::uint64_t> body_length;  ///< l=
  std::optional<std::int64_t> timestamp;     ///< t=
  std::optional<std::int64_t> expiration;    ///< x=
  std::string copied_headers;                ///< z= as given (diagnostics only)

  /// Where the key is published: "selector._domainkey.domain".
  std::string key_name() const;
};

/// Parses and validates a DKIM-Signature field value (after "DKIM-Signature:"): v=1; a, b, bh,
/// d, h, s present; a known algorithm and canonicalisation; i= within d=; From in h=; q= (when
/// present) offers dns/txt; x= not before t= and, when `now` is given, not before now.
result<signature> parse_signature(std::string_view value, std::optional<std::int64_t> now = std::nullopt,
                                  limits const& lim = {});

struct key_record {
  key_type type = key_type::rsa;
  std::string public_key;             ///< p= decoded; empty = revoked
  std::vector<std::string> hashes;    ///< h= (lower case); empty = any
  bool testing = false;               ///< t=y
  bool strict_identity = false;       ///< t=s: i= must be d= exactly
};

/// Parses a key record (the strings of one TXT record joined): v=DKIM1 (when present, first),
/// k= rsa or ed25519, p= base64 (empty: revoked, still parsed), h=, s= (must include email or
/// *), t=. Unknown tags are ignored.
result<key_record> parse_key_record(std::string_view txt, limits const& lim = {});

// ---------------------------------------------------------------------------------------------
// Canonicalisation (RFC 6376 3.4)

/// One header field ("Name: value", folding CRLFs included, without its final CRLF), canonical,
/// without a final CRLF.
std::string canonicalize_header(canonicalization c, std::string_view field);

/// A whole body, canonical (for tests and tools; the verifier and signer stream).
std::string canonicalize_body(canonicalization c, std::string_view body);

/// Canonicalises and hashes a body as it streams, stopping after `length` canonical octets when
/// one is given (l=).
class body_hasher {
 public:
  body_hasher(canonicalization c, algorithm a, std::optional<std::uint64_t> length = std::nullopt);
  ~body_hasher();
  body_hasher(body_hasher&&) noexcept;
  body_hasher& operator=(body_hasher&&) noexcept;

  void update(std::string_view chunk);
  /// The digest of the canonical body (after `length` octets when one was given). Call once.
  std::string finish();
  /// Canonical octets seen so far (not capped by `length`); complete after finish().
  std::uint64_t canonical_length() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

// ---------------------------------------------------------------------------------------------
// Verification

/// RFC 8601 2.7.1 result values for the dkim method.
enum class status { none, pass, fail, neutral, policy, permerror, temperror };
std::string_view to_string(status s) noexcept;

/// What the caller's DNS lookup of signature::key_name() (TXT) gave.
struct key_answer {
  enum class outcome { found, not_found, temporary_failure } result = outcome::found;
  std::vector<std::string> records;  ///< each record's strings joined, when found

  /// From what net::dns::resolver::txt(key_name) gave: nxdomain, no_data and an empty answer
  /// are not_found; any other failure is temporary_failure.
  static key_answer from_lookup(mailroom::result<std::vector<std::string>> const& txt);
};

struct verification {
  dkim::status status = dkim::status::none;
  std::error_code why;     ///< a dkim::errc (empty for pass)
  std::string reason;      ///< human-readable, for the reason= of Authentication-Results
  std::string domain;      ///< d=
  std::string selector;    ///< s=
  std::string identity;    ///< i= (or "@" + d=)
  std::string b_text;      ///< b= in base64 (for header.b)
  bool testing = false;    ///< the key record has t=y
};

class verifier {
 public:
  /// now: seconds since the epoch for x= checks (nullopt: the system clock, read once here).
  explicit verifier(limits lim = {}, std::optional<std::int64_t> now = std::nullopt);
  ~verifier();
  verifier(verifier const&) = delete;
  verifier& operator=(verifier const&) = delete;

  /// Appends message bytes. Bytes after a limit error are ignored.
  void feed(std::string_view bytes);
  /// The message is complete: body hashes are final.
  void finish();

  /// Set when the header went over a limit; the message cannot be evaluated (permerror).
  std::error_code error() const noexcept;

  /// One entry per DKIM-Signature field of the header, top first. Complete once the header has
  /// been fed (header_complete()).
  struct entry {
    result<signature> parsed;  ///< or why the field is not a usable signature
    std::string key_name;      ///< the TXT name to look up (empty when there is nothing to look up)
  };
  std::vector<entry> const& signatures() const noexcept;
  bool header_complete() const noexcept;

  /// Evaluates signature `index` with the key lookup's answer. Call after finish().
  /// pass; fail: body_hash_mismatch or signature_mismatch; neutral: unsupported_algorithm
  /// (Ed25519) or too_many_signatures (past limits::max_signatures); policy: key_too_small;
  /// temperror: the lookup failed for now; permerror: everything else (the signature did not
  /// parse or expired, rsa-sha1, no key, revoked or unusable key, l= beyond the body, a header
  /// over the limits). The reason names the errc.
  verification verify(std::size_t index, key_answer const& key) const;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

/// "dkim=pass reason=\"...\" header.d=D header.s=S header.b=PREFIX" (RFC 8601, RFC 6008's
/// header.b: the first 8 characters of b=, quoted when they are not a token). The reason is left
/// out for pass; `none` gives "dkim=none".
std::string format_result(verification const& v);

// ---------------------------------------------------------------------------------------------
// Signing

/// An RSA private key loaded through mbedTLS. Signers on several threads may share one.
class private_key {
 public:
  /// PEM (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY", unencrypted) holding an RSA key of
  /// 1024 to 8192 bits. Errors: bad_private_key, key_too_small, key_too_large.
  static result<std::shared_ptr<private_key>> load_pem(std::string_view pem);
  /// A new RSA key (bits 1024 to 8192, exponent 65537).
  static result<std::shared_ptr<private_key>> generate_rsa(unsigned bits);
  ~private_key();
  private_key(private_key const&) = delete;
  private_key& operator=(private_key const&) = delete;

  unsigned bits() const noexcept;
  std::string private_pem() const;
  /// The key record to publish: "v=DKIM1; k=rsa; p=BASE64" (SubjectPublicKeyInfo).
  std::string key_record() const;

  // For the library's own sources.
  struct impl;
  explicit private_key(std::unique_ptr<impl> p);
  impl& get() const noexcept { return *p_; }

 private:
  std::unique_ptr<impl> p_;
};

/// From, To, Cc, Subject, Date, Message-ID, Reply-To, In-Reply-To, References, MIME-Version,
/// Content-Type, Content-Transfer-Encoding.
std::vector<std::string> default_signed_headers();

struct sign_options {
  std::string domain;
  std::string selector;
  std::vector<std::string> headers = default_signed_headers();  ///< names, any case
  std::vector<std::string> oversign = {"from"};  ///< listed once more than they occur
  canonicalization header_canon = canonicalization::relaxed;
  canonicalization body_canon = canonicalization::relaxed;
  std::optional<std::int64_t> timestamp;   ///< t=
  std::optional<std::int64_t> expiration;  ///< x=
  std::string identity;                    ///< i= (must be within domain); empty: not given
  bool body_length = false;  ///< l= with the whole canonical body (lets text be appended; not advised)
};

/// Signs one message. The header is kept (limits as for verification); the body is hashed as it
/// streams.
class signer {
 public:
  signer(sign_options opts, std::shared_ptr<private_key const> key, limits lim = {});
  ~signer();
  signer(signer const&) = delete;
  signer& operator=(signer const&) = delete;

  void feed(std::string_view bytes);
  /// "DKIM-Signature: ...\r\n", folded at 78 columns, to put above the message's first field.
  /// Errors: header_too_large, too_many_fields, no_from, invalid options (bad_tag_value,
  /// identity_mismatch), crypto_failure.
  result<std::string> finish();

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

/// The signing key of each sender domain. Key rotation: a domain may hold several (selector,
/// key) pairs; one of them is current (the one added last, or the one chosen by make_current).
class signing_table {
 public:
  struct entry {
    std::string domain;
    std::string selector;
    std::shared_ptr<private_key const> key;
  };

  /// Adds or replaces (domain, selector); it becomes current when `current` or when it is the
  /// domain's first key.
  void add(std::string_view domain, std::string_view selector, std::shared_ptr<private_key const> key,
           bool current = true);
  /// Makes an existing selector current; errc::key_not_found when the domain has no such one.
  result<void> make_current(std::string_view domain, std::string_view selector);
  /// Drops a retired selector; when it was current, the last one remaining becomes current.
  void remove(std::string_view domain, std::string_view selector);
  /// The current key for a sender domain (ASCII case-insensitive, a trailing dot ignored), or
  /// nullptr.
  entry const* find(std::string_view domain) const;
  /// All selectors of a domain, in the order added.
  std::vector<entry> selectors(std::string_view domain) const;

 private:
  struct domain_keys {
    std::vector<entry> keys;
    std::size_t current = 0;
  };
  std::map<std::string, domain_keys, std::less<>> domains_;
};

}  // namespace mailroom::filter::dkim

template <>
struct std::is_error_code_enum<mailroom::filter::dkim::errc> : std::true_type {};
