#include "mailroom/sasl/server.hpp"

#include "mailroom/core/text.hpp"
#include "sasl/detail/mechanisms.hpp"

namespace mailroom::sasl {

result<std::unique_ptr<server_mechanism>> make_server_mechanism(std::string_view name) {
  if (text::iequals(name, "SCRAM-SHA-256")) return detail::make_scram_sha256_server();
  if (text::iequals(name, "PLAIN")) return detail::make_plain_server();
  if (text::iequals(name, "LOGIN")) return detail::make_login_server();
  return fail(errc::unsupported_mechanism);
}

std::vector<std::string> supported_server_mechanisms() { return {"SCRAM-SHA-256", "PLAIN", "LOGIN"}; }

}  // namespace mailroom::sasl
