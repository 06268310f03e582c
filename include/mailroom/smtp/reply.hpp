// SMTP replies as values (RFC 5321 4.2) with enhanced status codes (RFC 3463, RFC 2034).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace mailroom::smtp {

struct reply {
  int code = 250;
  std::array<std::uint8_t, 3> enhanced{0, 0, 0};  ///< {2,1,0}; {0,0,0} = none
  std::string text;                               ///< '\n' separates lines of a multi-line reply

  reply() = default;
  reply(int c, std::array<std::uint8_t, 3> e, std::string t) : code(c), enhanced(e), text(std::move(t)) {}
  reply(int c, std::string t) : code(c), text(std::move(t)) {}

  bool positive() const noexcept { return code >= 200 && code < 400; }
  bool transient() const noexcept { return code >= 400 && code < 500; }
  bool permanent() const noexcept { return code >= 500; }

  /// Wire form: each line "ddd-" / "ddd ", enhanced code on every line when requested and set,
  /// CRLF after each line. Control characters in text are replaced so a reply stays one reply.
  std::string wire(bool enhanced_codes = true) const;
  void append_wire(std::string& out, bool enhanced_codes = true) const;

  friend bool operator==(reply const&, reply const&) = default;
};

/// The common replies, with their enhanced codes.
namespace replies {
reply ok(std::string text = "Ok");                       // 250 2.0.0
reply sender_ok();                                      // 250 2.1.0
reply recipient_ok();                                   // 250 2.1.5
reply queued(std::string_view id);                      // 250 2.0.0 Ok: queued as <id>
reply start_data();                                     // 354
reply closing(std::string_view host);                   // 221 2.0.0
reply service_unavailable(std::string_view host, std::string_view why = "Service not available, closing channel");  // 421 4.3.2
reply local_error();                                    // 451 4.3.0
reply insufficient_storage();                           // 452 4.3.1
reply too_many_recipients();                            // 452 4.5.3
reply syntax_error(std::string text = "Syntax error, command unrecognized");  // 500 5.5.2
reply line_too_long();                                  // 500 5.5.6
reply bad_arguments(std::string text = "Syntax error in parameters or arguments");  // 501 5.5.4
reply not_implemented(std::string text = "Command not implemented");  // 502 5.5.1
reply bad_sequence(std::string text = "Bad sequence of commands");  // 503 5.5.1
reply param_not_implemented(std::string text = "Parameter not implemented");  // 504 5.5.4
reply mailbox_unavailable(std::string text = "Mailbox unavailable");  // 550 5.1.1
reply message_too_big();                                // 552 5.3.4
reply transaction_failed(std::string text = "Transaction failed");  // 554 5.0.0
reply unrecognized_parameter(std::string text = "Parameter unrecognized");  // 555 5.5.4
reply auth_required();                                  // 530 5.7.0
reply encryption_required();                            // 530 5.7.0 Must issue a STARTTLS command first
reply auth_succeeded();                                 // 235 2.7.0
reply auth_failed();                                    // 535 5.7.8
reply auth_plaintext_forbidden();                       // 538 5.7.11
}  // namespace replies

}  // namespace mailroom::smtp
