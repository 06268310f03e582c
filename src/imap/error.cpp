#include "mailroom/imap/error.hpp"

#include "mailroom/core/error.hpp"

namespace mailroom::imap {

namespace {
char const* describe(errc e) noexcept {
  switch (e) {
    case errc::malformed_response: return "malformed IMAP response";
    case errc::line_too_long: return "IMAP response line too long";
    case errc::literal_too_large: return "IMAP literal too large";
    case errc::nesting_too_deep: return "IMAP response nested too deeply";
    case errc::response_too_large: return "IMAP response too large";
    case errc::protocol_error: return "IMAP protocol error";
    case errc::starttls_unavailable: return "STARTTLS required but not available";
    case errc::auth_unavailable: return "no usable IMAP login method";
    case errc::login_refused: return "IMAP login refused";
    case errc::command_failed: return "IMAP command failed";
    case errc::too_large: return "message too large";
    case errc::no_such_message: return "no such message";
    case errc::unsupported: return "not supported by the IMAP server";
    case errc::server_closed: return "IMAP server closed the connection";
  }
  return nullptr;
}
}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.imap", describe, "unknown imap error");
  return instance;
}

}  // namespace mailroom::imap
