#include "mailroom/auth/passwd_file.hpp"

#include <crypt.h>
#include <sys/stat.h>

#include <array>
#include <cstring>
#include <fstream>
#include <sstream>

extern "C" {  // mbedTLS 2.28 ships this header without C++ guards
#include <mbedtls/constant_time.h>
}
#ifdef MAILROOM_HAVE_ARGON2
#include <argon2.h>
#endif

#include "mailroom/core/base64.hpp"
#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"

namespace mailroom::auth {

namespace {

constexpr std::array crypt_schemes = {"CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT"};

bool is_crypt_scheme(std::string_view s) {
  for (auto const* c : crypt_schemes)
    if (s == c) return true;
  return false;
}

bool is_argon2_scheme(std::string_view s) { return s == "ARGON2ID" || s == "ARGON2I"; }

constexpr bool have_argon2 =
#ifdef MAILROOM_HAVE_ARGON2
    true;
#else
    false;
#endif

// The shape of an encoded Argon2 hash, `$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>` (v= is absent
// for version 1.0; salt and hash are unpadded base64), checked when the file is loaded so a damaged
// line is reported then; libargon2 checks the numbers when it verifies.
bool argon2_encoded_ok(std::string_view scheme, std::string_view h) {
  std::string_view const prefix = scheme == "ARGON2ID" ? "$argon2id$" : "$argon2i$";
  if (!h.starts_with(prefix)) return false;
  h.remove_prefix(prefix.size());
  std::vector<std::string_view> fields;
  for (std::size_t dollar; (dollar = h.find('$')) != std::string_view::npos; h.remove_prefix(dollar + 1))
    fields.push_back(h.substr(0, dollar));
  fields.push_back(h);
  if (fields.size() == 4 && fields[0].starts_with("v=")) fields.erase(fields.begin());
  if (fields.size() != 3 || !fields[0].starts_with("m=") || fields[0].find(",t=") == std::string_view::npos ||
      fields[0].find(",p=") == std::string_view::npos)
    return false;
  for (auto f : {fields[1], fields[2]}) {
    if (f.empty()) return false;
    for (char c : f)
      if (!(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '+' && c != '/')
        return false;
  }
  return true;
}

#ifdef MAILROOM_HAVE_ARGON2
bool argon2_matches(std::string_view scheme, std::string const& encoded, std::string const& password) {
  auto const type = scheme == "ARGON2ID" ? Argon2_id : Argon2_i;
  return argon2_verify(encoded.c_str(), password.data(), password.size(), type) == ARGON2_OK;
}
#endif

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return mbedtls_ct_memcmp(a.data(), b.data(), a.size()) == 0;
}

// crypt(3) through libcrypt's reentrant interface; false for any failure ("*" outputs included).
bool crypt_matches(std::string const& password, std::string const& hash) {
  struct crypt_data data;
  std::memset(&data, 0, sizeof data);
  char const* out = crypt_r(password.c_str(), hash.c_str(), &data);
  if (!out || out[0] == '*') return false;
  return equal_constant_time(out, hash);
}

// Dovecot's {SCRAM-SHA-256}iterations,salt,StoredKey,ServerKey.
std::optional<sasl::scram_secret> parse_scram(std::string_view v) {
  std::array<std::string_view, 4> f;
  for (std::size_t i = 0; i < 4; ++i) {
    auto comma = v.find(',');
    if ((comma == std::string_view::npos) != (i == 3)) return std::nullopt;
    f[i] = v.substr(0, comma);
    v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
  }
  auto iter = text::parse_uint(f[0], 10'000'000);
  auto salt = base64::decode(f[1]);
  auto stored = base64::decode(f[2]);
  auto server = base64::decode(f[3]);
  if (!iter || *iter == 0 || !salt || salt->empty() || !stored || stored->size() != 32 || !server ||
      server->size() != 32)
    return std::nullopt;
  sasl::scram_secret s;
  s.iterations = static_cast<std::uint32_t>(*iter);
  s.salt = std::move(*salt);
  std::memcpy(s.stored_key.data(), stored->data(), 32);
  std::memcpy(s.server_key.data(), server->data(), 32);
  return s;
}

bool verify(passwd_file::entry const& e, std::string const& password) {
  if (e.scheme == "PLAIN") return equal_constant_time(e.hash, password);
  if (e.scram) {
    auto candidate = sasl::make_scram_secret(password, e.scram->salt, e.scram->iterations);
    return mbedtls_ct_memcmp(candidate.stored_key.data(), e.scram->stored_key.data(), 32) == 0;
  }
#ifdef MAILROOM_HAVE_ARGON2
  if (is_argon2_scheme(e.scheme)) return argon2_matches(e.scheme, e.hash, password);
#endif
  return crypt_matches(password, e.hash);
}

// A fixed hash for unknown users, so a lookup costs the same whether the name exists or not.
constexpr char const* decoy_hash =
    "$6$mailroomdecoy$Yk2fS8z7gW3Iq7tv9wEqEUxJ5m0aT2Q8y2d9QmE3C9qfTqk4S1c0l5VzGJpWb0fJqHk8wzq3t6ZyYQ0m4Qh1a/";

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(out.data(), static_cast<std::streamsize>(n));
  if (!urandom) throw std::runtime_error("mailroom: cannot read /dev/urandom");
  return out;
}

}  // namespace

passwd_file::passwd_file(std::string path, blocking_pool& pool) : path_(std::move(path)), pool_(pool) {}

result<std::shared_ptr<passwd_file>> passwd_file::open(std::string path, blocking_pool& pool) {
  auto p = std::make_shared<passwd_file>(std::move(path), pool);
  std::lock_guard lock(p->mutex_);
  if (auto r = p->load(); !r) return fail(r.error());
  p->last_check_ = std::chrono::steady_clock::now();
  return p;
}

// Caller holds mutex_.
result<void> passwd_file::load() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return fail(std::error_code(errno, std::system_category()));
  std::ifstream in(path_);
  if (!in) return fail(std::error_code(errno ? errno : EIO, std::system_category()));
  std::map<std::string, entry, std::less<>> users;
  std::vector<std::string> warnings;
  bool any_scram = false;
  std::string line;
  std::size_t n = 0;
  auto warn = [&](std::string const& why) { warnings.push_back(path_ + ":" + std::to_string(n) + ": " + why); };
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == 0 || colon == std::string::npos) {
      warn("expected user:{SCHEME}hash");
      continue;
    }
    std::string user = line.substr(0, colon);
    auto end = line.find(':', colon + 1);
    std::string pw = line.substr(colon + 1, end == std::string::npos ? std::string::npos : end - colon - 1);
    entry e;
    if (!pw.empty() && pw[0] == '{') {
      auto close = pw.find('}');
      if (close == std::string::npos) {
        warn("unterminated {SCHEME}");
        continue;
      }
      e.scheme = text::to_upper(std::string_view(pw).substr(1, close - 1));
      e.hash = pw.substr(close + 1);
    } else {
      e.scheme = "CRYPT";
      e.hash = pw;
    }
    if (e.scheme == "SCRAM-SHA-256") {
      e.scram = parse_scram(e.hash);
      if (!e.scram) {
        warn("malformed {SCRAM-SHA-256} value");
        continue;
      }
      any_scram = true;
    } else if (is_argon2_scheme(e.scheme)) {
      if (!have_argon2) {
        warn("{" + e.scheme + "} is not supported: mailroom was built without libargon2; " + user + " cannot log in");
        continue;
      }
      if (!argon2_encoded_ok(e.scheme, e.hash)) {
        warn("not an encoded " + std::string(e.scheme == "ARGON2ID" ? "$argon2id$" : "$argon2i$") + " hash");
        continue;
      }
    } else if (e.scheme != "PLAIN" && !is_crypt_scheme(e.scheme)) {
      warn("unknown scheme {" + e.scheme + "}");
      continue;
    } else if (e.scheme != "PLAIN" && (e.hash.empty() || e.hash[0] != '$')) {
      warn("not a crypt(3) hash with a $id$ prefix");
      continue;
    }
    if (users.count(user)) warn("duplicate user " + user + " (the later line wins)");
    users.insert_or_assign(std::move(user), std::move(e));
  }
  users_ = std::move(users);
  warnings_ = std::move(warnings);
  any_scram_ = any_scram;
  mtime_ns_ = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  file_size_ = st.st_size;
  return {};
}

void passwd_file::maybe_reload() {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < std::chrono::seconds(1)) return;
  last_check_ = now;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return;  // gone for a moment (editor rename): keep the users
  auto mtime = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (mtime == mtime_ns_ && st.st_size == file_size_) return;
  (void)load();  // on failure the previous users stay
}

std::optional<passwd_file::entry> passwd_file::find(std::string_view user) {
  maybe_reload();
  std::lock_guard lock(mutex_);
  if (auto it = users_.find(user); it != users_.end()) return it->second;
  return std::nullopt;
}

std::vector<std::string> passwd_file::warnings() const {
  std::lock_guard lock(mutex_);
  return warnings_;
}

std::size_t passwd_file::size() const {
  std::lock_guard lock(mutex_);
  return users_.size();
}

bool passwd_file::supports_scram() const noexcept {
  std::lock_guard lock(mutex_);
  return any_scram_;
}

task<result<identity>> passwd_file::authenticate(sasl::credentials const& creds) {
  auto e = find(creds.authcid);
  auto check = [e, password = creds.password]() -> bool {
    if (!e) {
      (void)crypt_matches(password, decoy_hash);
      return false;
    }
    return verify(*e, password);
  };
  bool const ok = co_await pool_.offload(std::move(check));
  if (!e) co_return fail(errc::unknown_credentials);
  // No proxy authorization: the authorization identity, if given, must be the user itself.
  if (!ok || (!creds.authzid.empty() && creds.authzid != creds.authcid)) co_return fail(errc::bad_credentials);
  co_return identity{creds.authcid};
}

task<result<bool>> passwd_file::user_exists(std::string_view user) { co_return find(user).has_value(); }

task<result<sasl::scram_secret>> passwd_file::scram_secret(std::string_view user) {
  auto e = find(user);
  if (!e || !e->scram) co_return fail(errc::unknown_credentials);
  co_return *e->scram;
}

// ---- chain -----------------------------------------------------------------------------------

chain::chain(std::vector<std::shared_ptr<backend>> backends) : backends_(std::move(backends)) {}

task<result<identity>> chain::authenticate(sasl::credentials const& creds) {
  for (auto const& b : backends_) {
    auto r = co_await b->authenticate(creds);
    if (r || r.error() != errc::unknown_credentials) co_return r;
  }
  co_return fail(errc::unknown_credentials);
}

task<result<bool>> chain::user_exists(std::string_view user) {
  for (auto const& b : backends_) {
    auto r = co_await b->user_exists(user);
    if (!r || *r) co_return r;
  }
  co_return false;
}

task<result<sasl::scram_secret>> chain::scram_secret(std::string_view user) {
  for (auto const& b : backends_) {
    if (!b->supports_scram()) {
      // A backend that knows the user but cannot do SCRAM decides: SCRAM fails for that user.
      auto known = co_await b->user_exists(user);
      if (known && *known) co_return fail(errc::unknown_credentials);
      continue;
    }
    auto r = co_await b->scram_secret(user);
    if (r || r.error() != errc::unknown_credentials) co_return r;
  }
  co_return fail(errc::unknown_credentials);
}

bool chain::supports_scram() const noexcept {
  for (auto const& b : backends_)
    if (b->supports_scram()) return true;
  return false;
}

// ---- hashing ---------------------------------------------------------------------------------

bool scheme_supported(std::string_view scheme_in) {
  std::string scheme = text::to_upper(scheme_in);
  if (is_argon2_scheme(scheme)) return have_argon2;
  return scheme == "PLAIN" || scheme == "SCRAM-SHA-256" || is_crypt_scheme(scheme);
}

result<std::string> hash_password(std::string_view password, std::string_view scheme_in) {
  std::string scheme = text::to_upper(scheme_in);
  if (scheme == "ARGON2ID") {
#ifdef MAILROOM_HAVE_ARGON2
    // What `doveadm pw -s ARGON2ID` writes: 64 MiB, 3 passes, one lane; a 16-byte salt, a 32-byte hash.
    constexpr std::uint32_t t_cost = 3, m_cost = 65536, lanes = 1, salt_len = 16, hash_len = 32;
    auto const salt = random_bytes(salt_len);
    std::string encoded(argon2_encodedlen(t_cost, m_cost, lanes, salt_len, hash_len, Argon2_id), '\0');
    int const rc = argon2id_hash_encoded(t_cost, m_cost, lanes, password.data(), password.size(), salt.data(),
                                         salt.size(), hash_len, encoded.data(), encoded.size());
    if (rc != ARGON2_OK)
      return fail(rc == ARGON2_MEMORY_ALLOCATION_ERROR ? errc::limit_exceeded : errc::invalid_argument);
    encoded.resize(std::strlen(encoded.c_str()));
    return "{ARGON2ID}" + encoded;
#else
    return fail(errc::unsupported);
#endif
  }
  if (scheme == "SCRAM-SHA-256") {
    auto s = sasl::make_scram_secret(password, random_bytes(16), 4096);
    auto b64 = [](auto const& key) { return base64::encode(std::string_view(reinterpret_cast<char const*>(key.data()), key.size())); };
    return "{SCRAM-SHA-256}" + std::to_string(s.iterations) + "," + base64::encode(s.salt) + "," + b64(s.stored_key) +
           "," + b64(s.server_key);
  }
  char const* prefix = scheme == "SHA512-CRYPT" ? "$6$"
                       : scheme == "SHA256-CRYPT" ? "$5$"
                       : scheme == "BLF-CRYPT"    ? "$2b$"
                       : scheme == "YESCRYPT"     ? "$y$"
                                                  : nullptr;
  if (!prefix) return fail(errc::unsupported);
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn(prefix, 0, nullptr, 0, setting, sizeof setting)) return fail(errc::unsupported);
  struct crypt_data data;
  std::memset(&data, 0, sizeof data);
  std::string pw(password);
  char const* out = crypt_r(pw.c_str(), setting, &data);
  if (!out || out[0] == '*') return fail(errc::unsupported);
  return "{" + scheme + "}" + out;
}

}  // namespace mailroom::auth
