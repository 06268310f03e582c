// One SASL authentication (RFC 4422) against an auth backend, for any protocol session.
//
// Contract: the session supplies how to send a challenge and read the client's answer (already
// base64-decoded, or nullopt when the client cancelled with "*"); run_sasl drives the mechanism
// and the backend and says how it ended. It never logs secrets.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "mailroom/auth/backend.hpp"
#include "mailroom/sasl/server.hpp"

namespace mailroom::auth {

struct sasl_outcome {
  enum class kind {
    success,        ///< `who` is authenticated
    failed,         ///< wrong credentials (NO / -ERR [AUTH] / 535)
    malformed,      ///< the client's data did not parse (BAD / 501)
    cancelled,      ///< the client sent "*"
    temporary,      ///< the backend failed (NO [UNAVAILABLE] / [SYS/TEMP] / 454)
    io_error,       ///< the challenge could not be sent or answered; end the session
  };
  kind k = kind::failed;
  identity who;
};

/// Answers a challenge: the decoded response, nullopt for "*", or an error (bad base64 is
/// errc::invalid_argument and ends as malformed; anything else as io_error).
using sasl_challenge_fn = std::function<task<result<std::optional<std::string>>>(std::string_view challenge)>;

/// `initial`: the decoded initial response (SASL-IR), if the client sent one.
task<sasl_outcome> run_sasl(sasl::server_mechanism& m, backend& be, std::optional<std::string> initial,
                            sasl_challenge_fn const& challenge);

}  // namespace mailroom::auth
