// PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login): both collect a user name and a
// password and let the session check them with the auth backend.
#include <mbedtls/platform_util.h>

#include "mailroom/core/text.hpp"
#include "sasl/detail/mechanisms.hpp"

namespace mailroom::sasl::detail {
namespace {

/// A field both mechanisms accept: UTF-8 without NUL, at most 255 bytes; empty only if allowed.
bool valid_field(std::string_view s, bool may_be_empty) {
  return (may_be_empty || !s.empty()) && s.size() <= max_field_size && s.find('\0') == std::string_view::npos &&
         text::is_valid_utf8(s);
}

void wipe(std::string& s) noexcept {
  mbedtls_platform_zeroize(s.data(), s.size());
  s.clear();
}

/// The part PLAIN and LOGIN share: the check_password round trip and the end states. After any
/// failure or success every further call fails with errc::protocol_error.
class password_mechanism : public server_mechanism {
 public:
  ~password_mechanism() override { wipe(creds_.password); }

  step_result step(std::string_view client_data, bool initial) final {
    if (finished_ || checking_) return finish(failure(errc::protocol_error));
    return finish(on_step(client_data, initial));
  }

  credentials const* pending_credentials() const noexcept final { return checking_ ? &creds_ : nullptr; }

  step_result password_checked(bool ok) final {
    if (!checking_) return finish(failure(errc::protocol_error));
    return finish(ok ? step_result{step_result::kind::success, {}, {}} : failure(errc::authentication_failed));
  }

  std::string const& authcid() const noexcept final { return creds_.authcid; }
  std::string const& authzid() const noexcept final { return creds_.authzid; }

 protected:
  virtual step_result on_step(std::string_view client_data, bool initial) = 0;

  step_result ask_backend() {
    checking_ = true;
    return {step_result::kind::check_password, {}, {}};
  }

  credentials creds_;

 private:
  step_result finish(step_result r) {
    if (r.k == step_result::kind::success || r.k == step_result::kind::failure) {
      finished_ = true;
      checking_ = false;
      wipe(creds_.password);
    }
    return r;
  }

  bool checking_ = false;
  bool finished_ = false;
};

/// message = [authzid] NUL authcid NUL passwd
class plain_server final : public password_mechanism {
 public:
  std::string_view name() const noexcept override { return "PLAIN"; }

 private:
  step_result on_step(std::string_view data, bool initial) override {
    if (!started_) {
      started_ = true;
      if (!initial) return data.empty() ? challenge({}) : failure(errc::protocol_error);
    }
    auto const first = data.find('\0');
    if (first == std::string_view::npos) return failure(errc::malformed);
    auto const second = data.find('\0', first + 1);
    if (second == std::string_view::npos) return failure(errc::malformed);
    auto const authzid = data.substr(0, first);
    auto const authcid = data.substr(first + 1, second - first - 1);
    auto const password = data.substr(second + 1);
    // valid_field rejects a third NUL inside the password.
    if (!valid_field(authzid, true) || !valid_field(authcid, false) || !valid_field(password, false))
      return failure(errc::malformed);
    creds_.authzid = authzid;
    creds_.authcid = authcid;
    creds_.password = password;
    return ask_backend();
  }

  bool started_ = false;
};

/// "Username:" then "Password:"; an initial response is the user name.
class login_server final : public password_mechanism {
 public:
  std::string_view name() const noexcept override { return "LOGIN"; }

 private:
  step_result on_step(std::string_view data, bool initial) override {
    switch (phase_) {
      case phase::start:
        if (!initial) {
          if (!data.empty()) return failure(errc::protocol_error);
          phase_ = phase::user;
          return challenge("Username:");
        }
        [[fallthrough]];
      case phase::user:
        if (!valid_field(data, false)) return failure(errc::malformed);
        creds_.authcid = data;
        phase_ = phase::password;
        return challenge("Password:");
      case phase::password:
        if (!valid_field(data, false)) return failure(errc::malformed);
        creds_.password = data;
        return ask_backend();
    }
    return failure(errc::protocol_error);
  }

  enum class phase { start, user, password };
  phase phase_ = phase::start;
};

}  // namespace

std::unique_ptr<server_mechanism> make_plain_server() { return std::make_unique<plain_server>(); }
std::unique_ptr<server_mechanism> make_login_server() { return std::make_unique<login_server>(); }

}  // namespace mailroom::sasl::detail
