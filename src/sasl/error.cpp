#include "mailroom/sasl/server.hpp"

#include "mailroom/core/error.hpp"

namespace mailroom::sasl {
namespace {
char const* describe(errc e) noexcept {
  switch (e) {
    case errc::malformed: return "malformed SASL message";
    case errc::unsupported_mechanism: return "unsupported SASL mechanism";
    case errc::authentication_failed: return "authentication failed";
    case errc::cancelled: return "authentication cancelled";
    case errc::protocol_error: return "SASL step in the wrong state";
  }
  return nullptr;
}
}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.sasl", describe, "unknown SASL error");
  return instance;
}
}  // namespace mailroom::sasl
