#include "mailroom/core/error.hpp"

namespace mailroom {
namespace {
class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mailroom"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::invalid_argument: return "invalid argument";
      case errc::limit_exceeded: return "limit exceeded";
      case errc::not_found: return "not found";
      case errc::unsupported: return "unsupported";
      case errc::io_error: return "i/o error";
      case errc::cancelled: return "cancelled";
      case errc::unknown_credentials: return "unknown credentials";
      case errc::bad_credentials: return "bad credentials";
    }
    return "unknown mailroom error";
  }
};
}  // namespace

std::error_category const& category() noexcept {
  static category_impl const instance;
  return instance;
}
}  // namespace mailroom
