// Authentication backends: who may log in, for SMTP AUTH, IMAP, POP3 and LMTP recipient checks.
//
// Contract: authenticate() fails with mailroom::errc::unknown_credentials when the backend does
// not know the user (so backends can be chained) and mailroom::errc::bad_credentials when the
// user exists but the password is wrong. Implementations may block only on their own executor
// work (SQL, LDAP are asynchronous); they never log passwords.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "mailroom/core/error.hpp"
#include "mailroom/core/result.hpp"
#include "mailroom/core/task.hpp"
#include "mailroom/sasl/server.hpp"

namespace mailroom::auth {

struct identity {
  std::string user;  ///< canonical user name the rest of the system uses
};

class backend {
 public:
  virtual ~backend() = default;
  virtual task<result<identity>> authenticate(sasl::credentials const& creds) = 0;
  virtual task<result<bool>> user_exists(std::string_view user) = 0;
  /// The SCRAM-SHA-256 secret for user; errc::unknown_credentials if unknown,
  /// errc::unsupported if this backend cannot provide one (SCRAM is then not offered).
  virtual task<result<sasl::scram_secret>> scram_secret(std::string_view user);
  /// Whether scram_secret() can work at all (decides whether SCRAM-SHA-256 is advertised).
  virtual bool supports_scram() const noexcept { return false; }
};

/// Users held in memory: for tests, appliances with a handful of accounts, and embedders that
/// load users from their own configuration. Thread-safe.
class memory_backend final : public backend {
 public:
  /// Adds or replaces a user. The password is kept only as a salted SCRAM secret.
  void add_user(std::string const& user, std::string_view password);

  task<result<identity>> authenticate(sasl::credentials const& creds) override;
  task<result<bool>> user_exists(std::string_view user) override;
  task<result<sasl::scram_secret>> scram_secret(std::string_view user) override;
  bool supports_scram() const noexcept override { return true; }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, sasl::scram_secret, std::less<>> users_;
};

}  // namespace mailroom::auth
