// SASL client mechanisms: PLAIN, LOGIN and SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash, gs2 flag
// "n": we do not support channel binding and say so).
#include "mailroom/sasl/client.hpp"

#include <mbedtls/platform_util.h>

#include <algorithm>

#include "mailroom/core/base64.hpp"
#include "mailroom/core/text.hpp"
#include "sasl/detail/client_mechanisms.hpp"
#include "sasl/detail/attributes.hpp"
#include "sasl/detail/crypto.hpp"
#include "sasl/detail/mechanisms.hpp"

namespace mailroom::sasl {

namespace detail {
namespace {

void wipe(std::string& s) noexcept {
  mbedtls_platform_zeroize(s.data(), s.size());
  s.clear();
}

template <std::size_t N>
void wipe(std::array<std::uint8_t, N>& a) noexcept {
  mbedtls_platform_zeroize(a.data(), a.size());
}

result<std::string> fail_with(errc e) { return fail(e); }

bool valid_field(std::string_view s, bool may_be_empty) {
  return (may_be_empty || !s.empty()) && s.size() <= max_field_size && s.find('\0') == std::string_view::npos;
}

/// The credentials every mechanism holds; the password is wiped when the mechanism dies or ends.
class credential_holder : public client_mechanism {
 public:
  explicit credential_holder(credentials c) : creds_(std::move(c)) {}
  ~credential_holder() override {
    wipe(creds_.password);
  }

 protected:
  credentials creds_;
};

/// message = [authzid] NUL authcid NUL passwd, sent as the initial response.
class plain_client final : public credential_holder {
 public:
  using credential_holder::credential_holder;
  std::string_view name() const noexcept override { return "PLAIN"; }

  std::optional<std::string> initial_response() override {
    if (failed_) return std::nullopt;
    sent_ = true;
    return message();
  }
  result<std::string> respond(std::string_view challenge) override {
    // A server that ignored the initial response asks with an empty challenge (RFC 4422 5).
    if (failed_ || answered_empty_ || !challenge.empty()) return stop();
    answered_empty_ = true;
    sent_ = true;
    return message();
  }
  bool complete() const noexcept override { return sent_ && !failed_; }

 private:
  std::string message() const {
    std::string m;
    m.reserve(creds_.authzid.size() + creds_.authcid.size() + creds_.password.size() + 2);
    m.append(creds_.authzid).append(1, '\0').append(creds_.authcid).append(1, '\0').append(creds_.password);
    return m;
  }
  result<std::string> stop() {
    failed_ = true;
    wipe(creds_.password);
    return fail_with(errc::protocol_error);
  }
  bool sent_ = false;
  bool answered_empty_ = false;
  bool failed_ = false;
};

/// Two challenges ("Username:", "Password:", whatever their text), answered in that order.
class login_client final : public credential_holder {
 public:
  using credential_holder::credential_holder;
  std::string_view name() const noexcept override { return "LOGIN"; }

  std::optional<std::string> initial_response() override { return std::nullopt; }
  result<std::string> respond(std::string_view) override {
    switch (step_++) {
      case 0: return creds_.authcid;
      case 1: return creds_.password;
      default:
        step_ = 3;
        wipe(creds_.password);
        return fail_with(errc::protocol_error);
    }
  }
  bool complete() const noexcept override { return step_ == 2; }

 private:
  int step_ = 0;  // challenges answered; 3 after a failure
};

/// saslname: ',' and '=' escaped as "=2C" and "=3D".
std::string encode_saslname(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ',') out += "=2C";
    else if (c == '=') out += "=3D";
    else out += c;
  }
  return out;
}

bool is_printable_nonce(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

std::string random_nonce() {
  std::string raw(24, '\0');
  random_bytes(reinterpret_cast<std::uint8_t*>(raw.data()), raw.size());
  return base64::encode(raw);
}

class scram_client final : public credential_holder {
 public:
  scram_client(credentials c, std::string nonce)
      : credential_holder(std::move(c)), nonce_(nonce.empty() ? random_nonce() : std::move(nonce)) {}
  ~scram_client() override {
    wipe(server_signature_);
  }

  std::string_view name() const noexcept override { return "SCRAM-SHA-256"; }

  std::optional<std::string> initial_response() override {
    if (state_ != state::start) return std::nullopt;
    gs2_header_ = "n,";
    if (!creds_.authzid.empty()) gs2_header_ += "a=" + encode_saslname(creds_.authzid);
    gs2_header_ += ',';
    client_first_bare_ = "n=" + encode_saslname(creds_.authcid) + ",r=" + nonce_;
    state_ = state::sent_first;
    return gs2_header_ + client_first_bare_;
  }

  result<std::string> respond(std::string_view challenge) override {
    switch (state_) {
      case state::start:
        // The server asked for the client-first message without an initial response.
        if (!challenge.empty()) return stop(errc::protocol_error);
        return *initial_response();
      case state::sent_first:
        return client_final(challenge);
      case state::sent_final:
        return verify_server_final(challenge);
      case state::done:
      case state::failed:
        break;
    }
    return stop(errc::protocol_error);
  }

  bool complete() const noexcept override { return state_ == state::done; }

 private:
  enum class state { start, sent_first, sent_final, done, failed };

  result<std::string> stop(errc e) {
    state_ = state::failed;
    wipe(creds_.password);
    return fail_with(e);
  }

  // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
  result<std::string> client_final(std::string_view server_first) {
    if (server_first.empty() || server_first.size() > max_message_size) return stop(errc::malformed);
    auto const attrs = split_attributes(server_first);
    if (attrs.size() < 3) return stop(errc::malformed);  // also an "m=" first: a mandatory extension
    auto const r = attribute(attrs[0], 'r');
    auto const s = attribute(attrs[1], 's');
    auto const i = attribute(attrs[2], 'i');
    if (!r || !s || !i) return stop(errc::malformed);
    // The server's nonce must extend ours (else it answers another exchange).
    if (!is_printable_nonce(*r) || r->size() <= nonce_.size() || r->substr(0, nonce_.size()) != nonce_)
      return stop(errc::malformed);
    auto const salt = base64::decode(*s);
    auto const iterations = text::parse_uint(*i, max_scram_iterations);
    if (!salt || salt->empty() || !iterations || *iterations == 0) return stop(errc::malformed);

    digest salted = pbkdf2_sha256(creds_.password, *salt, static_cast<std::uint32_t>(*iterations));
    wipe(creds_.password);
    digest client_key = hmac_sha256(as_text(salted), "Client Key");
    digest const stored_key = sha256(as_text(client_key));
    digest server_key = hmac_sha256(as_text(salted), "Server Key");

    std::string const without_proof = "c=" + base64::encode(gs2_header_) + ",r=" + std::string(*r);
    std::string const auth_message = client_first_bare_ + ',' + std::string(server_first) + ',' + without_proof;
    digest const client_signature = hmac_sha256(as_text(stored_key), auth_message);
    for (std::size_t k = 0; k < client_key.size(); ++k) client_key[k] ^= client_signature[k];  // now the proof
    server_signature_ = hmac_sha256(as_text(server_key), auth_message);
    std::string out = without_proof + ",p=" + base64::encode(as_text(client_key));
    wipe(salted);
    wipe(client_key);
    wipe(server_key);
    state_ = state::sent_final;
    return out;
  }

  // server-final-message = (server-error / verifier) ["," extensions]
  result<std::string> verify_server_final(std::string_view msg) {
    if (msg.empty() || msg.size() > max_message_size) return stop(errc::malformed);
    auto const first = split_attributes(msg).front();
    if (attribute(first, 'e')) return stop(errc::authentication_failed);
    auto const v = attribute(first, 'v');
    if (!v) return stop(errc::malformed);
    auto const signature = base64::decode(*v);
    if (!signature || signature->size() != server_signature_.size()) return stop(errc::authentication_failed);
    digest got{};
    std::copy(signature->begin(), signature->end(), reinterpret_cast<char*>(got.data()));
    if (!equal_constant_time(got, server_signature_)) return stop(errc::authentication_failed);
    state_ = state::done;
    return std::string();  // the empty response that ends the exchange (RFC 4954 4)
  }

  state state_ = state::start;
  std::string nonce_;
  std::string gs2_header_;
  std::string client_first_bare_;
  digest server_signature_{};
};

}  // namespace

std::unique_ptr<client_mechanism> make_scram_sha256_client(credentials creds, std::string client_nonce) {
  return std::make_unique<scram_client>(std::move(creds), std::move(client_nonce));
}

}  // namespace detail

result<std::unique_ptr<client_mechanism>> make_client_mechanism(std::string_view name, credentials creds) {
  bool const scram = text::iequals(name, "SCRAM-SHA-256");
  bool const plain = text::iequals(name, "PLAIN");
  bool const login = text::iequals(name, "LOGIN");
  if (!scram && !plain && !login) return fail(errc::unsupported_mechanism);
  bool ok = detail::valid_field(creds.authcid, false) && detail::valid_field(creds.authzid, true);
  // SCRAM carries the password only through PBKDF2: any length, but no NUL (it is text).
  ok = ok && (scram ? creds.password.find('\0') == std::string::npos : detail::valid_field(creds.password, true));
  // LOGIN has no authorization identity.
  ok = ok && !(login && !creds.authzid.empty());
  if (!ok) {
    detail::wipe(creds.password);
    return fail(errc::malformed);
  }
  if (scram) return detail::make_scram_sha256_client(std::move(creds));
  if (plain) return std::unique_ptr<client_mechanism>(std::make_unique<detail::plain_client>(std::move(creds)));
  return std::unique_ptr<client_mechanism>(std::make_unique<detail::login_client>(std::move(creds)));
}

std::vector<std::string> supported_client_mechanisms() { return {"SCRAM-SHA-256", "PLAIN", "LOGIN"}; }

}  // namespace mailroom::sasl
