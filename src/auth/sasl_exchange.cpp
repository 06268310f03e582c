#include "mailroom/auth/sasl_exchange.hpp"

#include "mailroom/core/error.hpp"

namespace mailroom::auth {

task<sasl_outcome> run_sasl(sasl::server_mechanism& m, backend& be, std::optional<std::string> initial,
                            sasl_challenge_fn const& challenge) {
  using kind = sasl_outcome::kind;
  identity who;
  auto step = initial ? m.step(*initial, true) : m.step({}, false);
  for (;;) {
    switch (step.k) {
      case sasl::step_result::kind::challenge: {
        auto answer = co_await challenge(step.data);
        if (!answer) co_return sasl_outcome{answer.error() == errc::invalid_argument ? kind::malformed : kind::io_error, {}};
        if (!*answer) co_return sasl_outcome{kind::cancelled, {}};
        step = m.step(**answer);
        break;
      }
      case sasl::step_result::kind::check_password: {
        auto const* creds = m.pending_credentials();
        bool ok = false;
        if (creds) {
          auto r = co_await be.authenticate(*creds);
          if (r) {
            ok = true;
            who = std::move(*r);
          } else if (r.error() != errc::unknown_credentials && r.error() != errc::bad_credentials) {
            co_return sasl_outcome{kind::temporary, {}};
          }
        }
        step = m.password_checked(ok);
        break;
      }
      case sasl::step_result::kind::need_scram_secret: {
        auto secret = co_await be.scram_secret(m.scram_user());
        if (!secret && secret.error() != errc::unknown_credentials) co_return sasl_outcome{kind::temporary, {}};
        step = m.set_scram_secret(secret ? &*secret : nullptr);
        break;
      }
      case sasl::step_result::kind::success: {
        if (!step.data.empty()) {  // final server data goes in one more challenge; its answer is empty
          auto answer = co_await challenge(step.data);
          if (!answer) co_return sasl_outcome{kind::io_error, {}};
          if (!*answer || !(*answer)->empty()) co_return sasl_outcome{kind::failed, {}};
        }
        if (who.user.empty()) who.user = m.authcid();
        co_return sasl_outcome{kind::success, std::move(who)};
      }
      case sasl::step_result::kind::failure:
        co_return sasl_outcome{step.error == sasl::errc::malformed ? kind::malformed : kind::failed, {}};
    }
  }
}

}  // namespace mailroom::auth
