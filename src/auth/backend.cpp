#include "mailroom/auth/backend.hpp"

namespace mailroom::auth {

task<result<sasl::scram_secret>> backend::scram_secret(std::string_view) { co_return fail(errc::unsupported); }

}  // namespace mailroom::auth
