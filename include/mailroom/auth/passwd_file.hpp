// Users from a Dovecot-compatible passwd file, and backends tried in turn.
//
// File format, one user per line (Dovecot's passwd-file): `user:{SCHEME}hash[:uid:gid:gecos:home:...]`.
// Only the first two fields are used here. Lines that are blank or start with '#' are skipped; a
// malformed line is skipped and reported by warnings(), never fatal. Schemes:
//   {SHA512-CRYPT} {SHA256-CRYPT} {BLF-CRYPT} {YESCRYPT} {CRYPT}  crypt(3) hashes, verified with libcrypt
//   {ARGON2ID} {ARGON2I}  Dovecot's encoded `$argon2id$v=19$m=65536,t=3,p=1$salt$hash`, verified with
//                    libargon2 when the build has it (see scheme_supported); otherwise such a user is
//                    skipped with a warning
//   {SCRAM-SHA-256}  Dovecot's `iterations,salt,StoredKey,ServerKey` (base64); also enables SCRAM
//   {PLAIN}          the password itself (tests and migrations only)
// A hash without {SCHEME} is taken as {CRYPT}. Hashing runs on the blocking pool: bcrypt, yescrypt
// and Argon2 cost milliseconds of CPU by design (Argon2 at m=65536 also 64 MiB per verification).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mailroom/auth/backend.hpp"
#include "mailroom/core/blocking.hpp"

namespace mailroom::auth {

class passwd_file final : public backend {
 public:
  /// Loads the file; fails if it cannot be read. Later changes (mtime or size) are picked up by
  /// the next lookup, at most once a second; if a reload fails the previous users stay.
  static result<std::shared_ptr<passwd_file>> open(std::string path, blocking_pool& pool);

  task<result<identity>> authenticate(sasl::credentials const& creds) override;
  task<result<bool>> user_exists(std::string_view user) override;
  /// Only for users stored as {SCRAM-SHA-256}; others are errc::unknown_credentials to SCRAM.
  task<result<sasl::scram_secret>> scram_secret(std::string_view user) override;
  bool supports_scram() const noexcept override;

  /// Problems found by the last (re)load, as "path:line: reason".
  std::vector<std::string> warnings() const;
  std::size_t size() const;

  struct entry {
    std::string scheme;  ///< upper-case, without braces
    std::string hash;
    std::optional<sasl::scram_secret> scram;
  };

  passwd_file(std::string path, blocking_pool& pool);

 private:
  result<void> load();
  void maybe_reload();
  std::optional<entry> find(std::string_view user);

  std::string path_;
  blocking_pool& pool_;
  mutable std::mutex mutex_;
  std::map<std::string, entry, std::less<>> users_;
  std::vector<std::string> warnings_;
  std::chrono::steady_clock::time_point last_check_{};
  std::int64_t mtime_ns_ = -1;
  std::int64_t file_size_ = -1;
  bool any_scram_ = false;
};

/// Tries each backend in order: the first that knows the user decides (unknown_credentials moves
/// on; any other answer, including a wrong password, is final).
class chain final : public backend {
 public:
  explicit chain(std::vector<std::shared_ptr<backend>> backends);
  task<result<identity>> authenticate(sasl::credentials const& creds) override;
  task<result<bool>> user_exists(std::string_view user) override;
  task<result<sasl::scram_secret>> scram_secret(std::string_view user) override;
  bool supports_scram() const noexcept override;

 private:
  std::vector<std::shared_ptr<backend>> backends_;
};

/// Hashes a password for a passwd file: "{SHA512-CRYPT}$6$...". Schemes: SHA512-CRYPT (default),
/// SHA256-CRYPT, BLF-CRYPT, YESCRYPT (libcrypt), ARGON2ID (libargon2; Dovecot's defaults m=65536,
/// t=3, p=1, a 16-byte salt), SCRAM-SHA-256 (Dovecot's format). errc::unsupported for any other
/// scheme, and for ARGON2ID in a build without libargon2.
result<std::string> hash_password(std::string_view password, std::string_view scheme = "SHA512-CRYPT");

/// Whether this build verifies {scheme} (upper or lower case) in a passwd file: false for unknown
/// schemes, and for ARGON2ID/ARGON2I when mailroom was built without libargon2.
bool scheme_supported(std::string_view scheme);

}  // namespace mailroom::auth
