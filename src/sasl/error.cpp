#include "mailroom/sasl/server.hpp"

namespace mailroom::sasl {
namespace {
class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mailroom.sasl"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::malformed: return "malformed SASL message";
      case errc::unsupported_mechanism: return "unsupported SASL mechanism";
      case errc::authentication_failed: return "authentication failed";
      case errc::cancelled: return "authentication cancelled";
      case errc::protocol_error: return "SASL step in the wrong state";
    }
    return "unknown SASL error";
  }
};
}  // namespace

std::error_category const& category() noexcept {
  static category_impl const instance;
  return instance;
}
}  // namespace mailroom::sasl
