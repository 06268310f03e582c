// SCRAM-SHA-256 server (RFC 5802 with RFC 7677's hash), without channel binding: the client may
// say "n" or "y" but not "p=" (we never advertise SCRAM-SHA-256-PLUS). User names and passwords
// are compared as bytes; SASLprep is not applied, which changes nothing for ASCII credentials.
#include <mbedtls/platform_util.h>

#include <optional>
#include <string>
#include <vector>

#include "mailroom/core/base64.hpp"
#include "mailroom/core/text.hpp"
#include "sasl/detail/attributes.hpp"
#include "sasl/detail/crypto.hpp"
#include "sasl/detail/mechanisms.hpp"

namespace mailroom::sasl {

scram_secret make_scram_secret(std::string_view password, std::string_view salt, std::uint32_t iterations) {
  scram_secret s;
  s.salt = salt;
  s.iterations = iterations;
  detail::digest salted = detail::pbkdf2_sha256(password, salt, iterations);
  detail::digest client_key = detail::hmac_sha256(detail::as_text(salted), "Client Key");
  s.stored_key = detail::sha256(detail::as_text(client_key));
  s.server_key = detail::hmac_sha256(detail::as_text(salted), "Server Key");
  mbedtls_platform_zeroize(salted.data(), salted.size());
  mbedtls_platform_zeroize(client_key.data(), client_key.size());
  return s;
}

namespace detail {
namespace {

/// An optional extension (RFC 5802 "extensions"): one letter other than those the mechanism
/// defines, '=', a non-empty value. Its meaning is ignored.
bool is_extension(std::string_view attr) {
  if (attr.size() < 3 || attr[1] != '=') return false;
  char const c = attr[0];
  bool const alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return alpha && std::string_view("acemnprsv").find(c) == std::string_view::npos;
}

/// saslname: "=2C" stands for ',' and "=3D" for '='; any other '=' is malformed.
std::optional<std::string> decode_saslname(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '=') {
      out += s[i];
      continue;
    }
    auto const escape = s.substr(i + 1, 2);
    if (escape == "2C") out += ',';
    else if (escape == "3D") out += '=';
    else return std::nullopt;
    i += 2;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

/// c-nonce: printable ASCII except ','.
bool is_nonce(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

bool acceptable_message(std::string_view s) {
  return !s.empty() && s.size() <= max_message_size && s.find('\0') == std::string_view::npos &&
         text::is_valid_utf8(s);
}

/// Per-process key behind the secrets of unknown users: stable for a name within the process,
/// unpredictable outside it.
std::string const& fake_secret_key() {
  static std::string const key = [] {
    std::string k(32, '\0');
    random_bytes(reinterpret_cast<std::uint8_t*>(k.data()), k.size());
    return k;
  }();
  return key;
}

scram_secret fake_secret(std::string_view user) {
  auto const& key = fake_secret_key();
  scram_secret s;
  s.salt = as_text(hmac_sha256(key, std::string("salt\0", 5).append(user))).substr(0, 16);
  s.iterations = 4096;
  s.stored_key = hmac_sha256(key, std::string("stored\0", 7).append(user));
  s.server_key = hmac_sha256(key, std::string("server\0", 7).append(user));
  return s;
}

std::string random_nonce() {
  std::string raw(24, '\0');
  random_bytes(reinterpret_cast<std::uint8_t*>(raw.data()), raw.size());
  return base64::encode(raw);
}

class scram_server final : public server_mechanism {
 public:
  explicit scram_server(std::string server_nonce)
      : server_nonce_(server_nonce.empty() ? random_nonce() : std::move(server_nonce)) {}
  ~scram_server() override {
    mbedtls_platform_zeroize(secret_.stored_key.data(), secret_.stored_key.size());
    mbedtls_platform_zeroize(secret_.server_key.data(), secret_.server_key.size());
  }

  std::string_view name() const noexcept override { return "SCRAM-SHA-256"; }

  step_result step(std::string_view data, bool initial) override {
    switch (state_) {
      case state::start:
        if (!initial) {
          if (!data.empty()) return finish(failure(errc::protocol_error));
          state_ = state::client_first;
          return challenge({});
        }
        [[fallthrough]];
      case state::client_first:
        if (!parse_client_first(data)) return finish(failure(errc::malformed));
        state_ = state::need_secret;
        return {step_result::kind::need_scram_secret, {}, {}};
      case state::client_final:
        return finish(verify_client_final(data));
      case state::need_secret:
      case state::done:
        break;
    }
    return finish(failure(errc::protocol_error));
  }

  std::string_view scram_user() const noexcept override { return username_; }

  step_result set_scram_secret(scram_secret const* secret) override {
    if (state_ != state::need_secret) return finish(failure(errc::protocol_error));
    if (secret && (secret->iterations == 0 || secret->salt.empty())) return finish(failure(errc::protocol_error));
    known_user_ = secret != nullptr;
    secret_ = secret ? *secret : fake_secret(username_);
    server_first_ = "r=" + client_nonce_ + server_nonce_ + ",s=" + base64::encode(secret_.salt) +
                    ",i=" + std::to_string(secret_.iterations);
    state_ = state::client_final;
    return challenge(server_first_);
  }

  std::string const& authcid() const noexcept override { return username_; }
  std::string const& authzid() const noexcept override { return authzid_; }

 private:
  enum class state { start, client_first, need_secret, client_final, done };

  step_result finish(step_result r) {
    if (r.k == step_result::kind::success || r.k == step_result::kind::failure) state_ = state::done;
    return r;
  }

  // client-first-message = gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]
  bool parse_client_first(std::string_view msg) {
    if (!acceptable_message(msg)) return false;
    auto const attrs = split_attributes(msg);
    if (attrs.size() < 4) return false;
    if (attrs[0] != "n" && attrs[0] != "y") return false;  // "p=..." asks for channel binding
    if (!attrs[1].empty()) {
      auto const a = attribute(attrs[1], 'a');
      auto const authzid = a ? decode_saslname(*a) : std::nullopt;
      if (!authzid) return false;
      authzid_ = *authzid;
    }
    auto const n = attribute(attrs[2], 'n');  // an "m=" here is a mandatory extension we do not know
    auto const user = n ? decode_saslname(*n) : std::nullopt;
    auto const r = attribute(attrs[3], 'r');
    if (!user || !r || !is_nonce(*r)) return false;
    for (std::size_t i = 4; i < attrs.size(); ++i)
      if (!is_extension(attrs[i])) return false;
    username_ = *user;
    client_nonce_ = *r;
    gs2_header_ = std::string(attrs[0]) + ',' + std::string(attrs[1]) + ',';
    client_first_bare_ = msg.substr(gs2_header_.size());
    return true;
  }

  // client-final-message = "c=" base64(gs2-header) "," "r=" nonce ["," extensions] "," "p=" base64(proof)
  step_result verify_client_final(std::string_view msg) {
    if (!acceptable_message(msg)) return failure(errc::malformed);
    auto const attrs = split_attributes(msg);
    if (attrs.size() < 3) return failure(errc::malformed);
    auto const c = attribute(attrs[0], 'c');
    auto const r = attribute(attrs[1], 'r');
    auto const p = attribute(attrs.back(), 'p');
    if (!c || !r || !p) return failure(errc::malformed);
    for (std::size_t i = 2; i + 1 < attrs.size(); ++i)
      if (!is_extension(attrs[i])) return failure(errc::malformed);
    auto const binding = base64::decode(*c);
    auto const proof = base64::decode(*p);
    if (!binding || !proof || proof->size() != digest{}.size()) return failure(errc::malformed);
    if (*binding != gs2_header_ || *r != client_nonce_ + server_nonce_) return failure(errc::authentication_failed);

    auto const without_proof = msg.substr(0, msg.size() - attrs.back().size() - 1);
    std::string const auth_message = client_first_bare_ + ',' + server_first_ + ',' + std::string(without_proof);
    std::string_view const stored_key = as_text(secret_.stored_key);
    digest client_key = hmac_sha256(stored_key, auth_message);  // ClientSignature, then ClientKey
    for (std::size_t i = 0; i < client_key.size(); ++i) client_key[i] ^= static_cast<std::uint8_t>((*proof)[i]);
    bool const proof_ok = equal_constant_time(sha256(as_text(client_key)), secret_.stored_key);
    mbedtls_platform_zeroize(client_key.data(), client_key.size());
    if (!proof_ok || !known_user_) return failure(errc::authentication_failed);

    auto const server_signature = hmac_sha256(as_text(secret_.server_key), auth_message);
    return {step_result::kind::success, "v=" + base64::encode(as_text(server_signature)), {}};
  }

  state state_ = state::start;
  std::string server_nonce_;
  std::string username_;
  std::string authzid_;
  std::string client_nonce_;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  scram_secret secret_;
  bool known_user_ = false;
};

}  // namespace

std::unique_ptr<server_mechanism> make_scram_sha256_server(std::string server_nonce) {
  return std::make_unique<scram_server>(std::move(server_nonce));
}

}  // namespace detail
}  // namespace mailroom::sasl
