#include "mailroom/core/error.hpp"

namespace mailroom {
namespace {
char const* describe(errc e) noexcept {
  switch (e) {
    case errc::invalid_argument: return "invalid argument";
    case errc::limit_exceeded: return "limit exceeded";
    case errc::not_found: return "not found";
    case errc::unsupported: return "unsupported";
    case errc::io_error: return "i/o error";
    case errc::cancelled: return "cancelled";
    case errc::unknown_credentials: return "unknown credentials";
    case errc::bad_credentials: return "bad credentials";
    case errc::unavailable: return "remote peer unavailable or refused";
  }
  return nullptr;
}
}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom", describe, "unknown mailroom error");
  return instance;
}
}  // namespace mailroom
