// Sans-I/O parsing of SMTP command lines (RFC 5321 4.1, with the parameters of RFC 1870 SIZE,
// RFC 6152 8BITMIME, RFC 3030 CHUNKING, RFC 3461 DSN, RFC 6531 SMTPUTF8, RFC 4954 AUTH).
//
// Contract: every function takes one line without its CRLF and either returns the parsed command
// or the exact reply the server should send. Nothing here allocates more than the line's size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mailroom/core/address.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/smtp/reply.hpp"

namespace mailroom::smtp {

enum class verb : std::uint8_t {
  helo, ehlo, lhlo, mail, rcpt, data, bdat, rset, noop, quit, vrfy, expn, help, starttls, auth, unknown
};

struct command {
  verb v = verb::unknown;
  std::string_view name;  ///< the verb as sent
  std::string_view args;  ///< everything after the verb and its separating space
};

/// Splits a line into verb and arguments. Never fails: anything unrecognised is verb::unknown.
command parse_command(std::string_view line) noexcept;

enum class body_type : std::uint8_t { unspecified, seven_bit, eight_bit_mime, binary_mime };
enum class dsn_ret : std::uint8_t { unspecified, full, headers };

/// DSN NOTIFY flags (RFC 3461 4.1); none set = unspecified.
enum notify_flags : std::uint8_t { notify_never = 1, notify_success = 2, notify_failure = 4, notify_delay = 8 };

struct mail_params {
  std::optional<std::uint64_t> size;  ///< SIZE=
  body_type body = body_type::unspecified;
  bool smtputf8 = false;
  dsn_ret ret = dsn_ret::unspecified;
  std::string envid;                  ///< ENVID, xtext-decoded
  std::optional<std::string> auth;    ///< AUTH= mailbox, xtext-decoded; the server makes it "<>"
                                      ///< unless the client authenticated (RFC 4954 5)
};

struct rcpt_params {
  std::uint8_t notify = 0;  ///< notify_flags
  std::string orcpt_type;   ///< "rfc822" in ORCPT=rfc822;addr
  std::string orcpt;        ///< xtext-decoded original recipient
};

/// Which extensions this session advertised: parameters of others are refused with 555.
struct extension_set {
  bool esmtp = true;  ///< false after HELO: no parameters at all
  bool eight_bit_mime = true;
  bool smtputf8 = true;
  bool dsn = true;
  bool chunking = true;
  std::uint64_t max_size = 0;  ///< 0 = no limit
};

struct mail_command {
  address from;
  mail_params params;
};
struct rcpt_command {
  address to;
  rcpt_params params;
};
struct bdat_command {
  std::uint64_t size = 0;
  bool last = false;
};
struct auth_command {
  std::string mechanism;                      ///< upper-cased
  std::optional<std::string> initial_response;  ///< still base64; "=" means empty
};

expected<mail_command, reply> parse_mail(std::string_view args, extension_set const& ext);
expected<rcpt_command, reply> parse_rcpt(std::string_view args, extension_set const& ext);
expected<bdat_command, reply> parse_bdat(std::string_view args);
expected<auth_command, reply> parse_auth(std::string_view args);
/// HELO/EHLO argument: a domain or address literal (lenient about what clients really send).
expected<std::string, reply> parse_helo(std::string_view args);

/// RFC 3461 xtext decoding; nullopt when malformed.
std::optional<std::string> xtext_decode(std::string_view s);
std::string xtext_encode(std::string_view s);

}  // namespace mailroom::smtp
