#include "mailroom/net/tls/context.hpp"

#include <cerrno>
#include <fstream>
#include <iterator>
#include <mutex>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
#include <psa/crypto.h>
#endif

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "net/tls/detail/mbedtls.hpp"

namespace mailroom::net::tls {

namespace {

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mailroom.tls"; }
  std::string message(int ev) const override {
    if (ev < 0) {
#if defined(MBEDTLS_ERROR_C)
      char buf[160];
      mbedtls_strerror(ev, buf, sizeof buf);
      return buf;
#else
      return "mbedTLS error " + std::to_string(ev);
#endif
    }
    switch (static_cast<errc>(ev)) {
      case errc::bad_certificate: return "certificate or private key is invalid";
      case errc::handshake_failed: return "TLS handshake failed";
      case errc::verify_failed: return "peer certificate did not verify";
      case errc::closed: return "TLS session is closed";
    }
    return "unknown TLS error";
  }
};

// Contexts may be created on any thread; PSA (mbedTLS 3.x) must be initialised once before use.
void init_crypto_once() {
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
  static std::once_flag once;
  std::call_once(once, [] { (void)psa_crypto_init(); });
#endif
}

class drbg {
 public:
  drbg() {
    mbedtls_entropy_init(&entropy_);
    mbedtls_ctr_drbg_init(&ctr_);
  }
  ~drbg() {
    mbedtls_ctr_drbg_free(&ctr_);
    mbedtls_entropy_free(&entropy_);
  }
  drbg(drbg const&) = delete;
  drbg& operator=(drbg const&) = delete;

  int fill(unsigned char* out, std::size_t len) {
    if (!seeded_) {
      static constexpr unsigned char personalization[] = "mailroom-tls";
      if (int rc = mbedtls_ctr_drbg_seed(&ctr_, mbedtls_entropy_func, &entropy_, personalization,
                                         sizeof personalization - 1))
        return rc;
      seeded_ = true;
    }
    while (len > 0) {
      std::size_t const chunk = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
      if (int rc = mbedtls_ctr_drbg_random(&ctr_, out, chunk)) return rc;
      out += chunk;
      len -= chunk;
    }
    return 0;
  }

 private:
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context ctr_;
  bool seeded_ = false;
};

unsigned char const* bytes(std::string const& s) noexcept { return reinterpret_cast<unsigned char const*>(s.c_str()); }

int parse_key(mbedtls_pk_context* pk, std::string const& pem) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_parse_key(pk, bytes(pem), pem.size() + 1, nullptr, 0, detail::thread_rng, nullptr);
#else
  return mbedtls_pk_parse_key(pk, bytes(pem), pem.size() + 1, nullptr, 0);
#endif
}

int check_pair(mbedtls_pk_context const* pub, mbedtls_pk_context const* prv) {
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_check_pair(pub, prv, detail::thread_rng, nullptr);
#else
  return mbedtls_pk_check_pair(pub, prv);
#endif
}

// ECDSA caches a precomputed table in the key's curve group on its first signature; signing once
// here, before the key is shared between threads, keeps concurrent handshakes from racing to fill it.
int warm_up(mbedtls_pk_context* key) {
  if (!mbedtls_pk_can_do(key, MBEDTLS_PK_ECDSA)) return 0;
  unsigned char const digest[32] = {1};
  unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
  std::size_t len = 0;
#if MBEDTLS_VERSION_MAJOR >= 3
  return mbedtls_pk_sign(key, MBEDTLS_MD_SHA256, digest, sizeof digest, sig, sizeof sig, &len, detail::thread_rng,
                         nullptr);
#else
  return mbedtls_pk_sign(key, MBEDTLS_MD_SHA256, digest, sizeof digest, sig, &len, detail::thread_rng, nullptr);
#endif
}

// Refuses TLS 1.0 and 1.1 (mbedTLS 3.x no longer implements them).
void require_tls12(mbedtls_ssl_config* conf) {
#if MBEDTLS_VERSION_MAJOR < 3
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#else
  (void)conf;
#endif
}

#if defined(MBEDTLS_SSL_SERVER_NAME_INDICATION)
// Exact names win over wildcards; an unknown name keeps the default certificate.
int on_sni(void* p, mbedtls_ssl_context* ssl, unsigned char const* name, std::size_t len) {
  std::string_view const host(reinterpret_cast<char const*>(name), len);
  if (detail::sni_sink) detail::sni_sink->assign(host);
  auto& ctx = *static_cast<server_context::impl*>(p);
  for (bool wildcard : {false, true}) {
    for (auto const& e : ctx.sni) {
      if (e->pattern.starts_with('*') != wildcard || !detail::sni_matches(e->pattern, host)) continue;
      return mbedtls_ssl_set_hs_own_cert(ssl, e->cred.chain(), e->cred.key());
    }
  }
  return 0;
}
#endif

mbedtls_x509_crt const* first_or_null(mbedtls_x509_crt const& chain) noexcept {
  return chain.raw.p ? &chain : nullptr;
}

}  // namespace

std::error_category const& category() noexcept {
  static category_impl const instance;
  return instance;
}

namespace detail {

thread_local std::string* sni_sink = nullptr;

int thread_rng(void*, unsigned char* out, std::size_t len) {
  thread_local drbg generator;
  return generator.fill(out, len);
}

std::error_code mbedtls_error(int rc) noexcept { return {rc, category()}; }

credential::credential() {
  mbedtls_x509_crt_init(&chain_);
  mbedtls_pk_init(&key_);
}

credential::~credential() {
  mbedtls_pk_free(&key_);
  mbedtls_x509_crt_free(&chain_);
}

result<void> credential::load(key_pair const& kp) {
  if (mbedtls_x509_crt_parse(&chain_, bytes(kp.cert_pem), kp.cert_pem.size() + 1) != 0 || !first_or_null(chain_))
    return fail(errc::bad_certificate);
  if (parse_key(&key_, kp.key_pem) != 0) return fail(errc::bad_certificate);
  if (check_pair(&chain_.pk, &key_) != 0) return fail(errc::bad_certificate);
  if (int rc = warm_up(&key_)) return fail(mbedtls_error(rc));
  return {};
}

bool valid_dns_name(std::string_view name) noexcept {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return false;
  return name.find("..") == std::string_view::npos;
}

bool sni_matches(std::string_view pattern, std::string_view name) noexcept {
  if (pattern.starts_with("*.")) {
    auto const dot = name.find('.');
    if (dot == 0 || dot == std::string_view::npos) return false;
    return text::iequals(name.substr(dot), pattern.substr(1));
  }
  return text::iequals(pattern, name);
}

}  // namespace detail

// ---- server -----------------------------------------------------------------------------------

server_context::impl::impl() { mbedtls_ssl_config_init(&conf); }
server_context::impl::~impl() { mbedtls_ssl_config_free(&conf); }

server_context::server_context() : impl_(std::make_unique<impl>()) {}
server_context::~server_context() = default;

result<std::shared_ptr<server_context>> server_context::create(key_pair const& default_cert) {
  init_crypto_once();
  std::shared_ptr<server_context> ctx(new server_context());
  auto& im = *ctx->impl_;
  if (auto r = im.default_cred.load(default_cert); !r) return fail(r.error());
  if (int rc = mbedtls_ssl_config_defaults(&im.conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT))
    return fail(detail::mbedtls_error(rc));
  mbedtls_ssl_conf_rng(&im.conf, detail::thread_rng, nullptr);
  require_tls12(&im.conf);
  if (int rc = mbedtls_ssl_conf_own_cert(&im.conf, im.default_cred.chain(), im.default_cred.key()))
    return fail(detail::mbedtls_error(rc));
#if defined(MBEDTLS_SSL_SERVER_NAME_INDICATION)
  mbedtls_ssl_conf_sni(&im.conf, on_sni, &im);
#endif
  return ctx;
}

result<void> server_context::add_sni_certificate(std::string const& host_name, key_pair const& kp) {
#if defined(MBEDTLS_SSL_SERVER_NAME_INDICATION)
  if (!detail::valid_dns_name(host_name)) return fail(mailroom::errc::invalid_argument);
  auto entry = std::make_unique<impl::sni_entry>();
  entry->pattern = host_name;
  if (auto r = entry->cred.load(kp); !r) return r;
  impl_->sni.push_back(std::move(entry));
  return {};
#else
  return fail(mailroom::errc::unsupported);
#endif
}

// ---- client -----------------------------------------------------------------------------------

client_context::impl::impl() {
  mbedtls_ssl_config_init(&conf);
  mbedtls_x509_crt_init(&trust);
}
client_context::impl::~impl() {
  mbedtls_ssl_config_free(&conf);
  mbedtls_x509_crt_free(&trust);
}

client_context::client_context() : impl_(std::make_unique<impl>()) {}
client_context::~client_context() = default;

namespace {
result<void> configure_client(client_context::impl& im, verify_mode mode) {
  if (int rc = mbedtls_ssl_config_defaults(&im.conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT))
    return fail(detail::mbedtls_error(rc));
  mbedtls_ssl_conf_rng(&im.conf, detail::thread_rng, nullptr);
  require_tls12(&im.conf);
  im.mode = mode;
  int const authmode = mode == verify_mode::none       ? MBEDTLS_SSL_VERIFY_NONE
                       : mode == verify_mode::optional ? MBEDTLS_SSL_VERIFY_OPTIONAL
                                                       : MBEDTLS_SSL_VERIFY_REQUIRED;
  mbedtls_ssl_conf_authmode(&im.conf, authmode);
  if (first_or_null(im.trust)) mbedtls_ssl_conf_ca_chain(&im.conf, &im.trust, nullptr);
  return {};
}
}  // namespace

result<std::shared_ptr<client_context>> shared_client_context(bool verify) {
  static std::mutex m;
  static std::shared_ptr<client_context> unchecked, verifying;
  std::lock_guard lock(m);
  auto& slot = verify ? verifying : unchecked;
  if (!slot) {
    auto c = client_context::create(verify ? verify_mode::required : verify_mode::none);
    if (!c) return fail(c.error());
    slot = std::move(*c);
  }
  return slot;
}

result<std::shared_ptr<client_context>> client_context::create(verify_mode mode, std::string const& trust_pem_file) {
  init_crypto_once();
  std::shared_ptr<client_context> ctx(new client_context());
  auto& im = *ctx->impl_;
  std::string const path = trust_pem_file.empty() ? "/etc/ssl/certs/ca-certificates.crt" : trust_pem_file;
  int const rc = mbedtls_x509_crt_parse_file(&im.trust, path.c_str());
  // A bundle in which some entries do not parse (rc > 0) still provides the others.
  bool const usable = rc >= 0 && first_or_null(im.trust);
  if (!usable && (!trust_pem_file.empty() || mode == verify_mode::required))
    return fail(rc < 0 ? detail::mbedtls_error(rc) : make_error_code(errc::bad_certificate));
  if (auto r = configure_client(im, mode); !r) return fail(r.error());
  return ctx;
}

result<std::shared_ptr<client_context>> client_context::create_with_trust(verify_mode mode,
                                                                         std::string_view trust_pem) {
  init_crypto_once();
  std::shared_ptr<client_context> ctx(new client_context());
  auto& im = *ctx->impl_;
  std::string const pem(trust_pem);
  if (mbedtls_x509_crt_parse(&im.trust, bytes(pem), pem.size() + 1) != 0 || !first_or_null(im.trust))
    return fail(errc::bad_certificate);
  if (auto r = configure_client(im, mode); !r) return fail(r.error());
  return ctx;
}

result<void> client_context::set_client_certificate(key_pair const& kp) {
  auto cred = std::make_unique<detail::credential>();
  if (auto r = cred->load(kp); !r) return r;
  if (int rc = mbedtls_ssl_conf_own_cert(&impl_->conf, cred->chain(), cred->key()))
    return fail(detail::mbedtls_error(rc));
  impl_->own = std::move(cred);
  return {};
}

// ---- files ------------------------------------------------------------------------------------

namespace {
result<std::string> read_whole_file(std::string const& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::error_code(errno ? errno : ENOENT, std::generic_category()));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return fail(mailroom::errc::io_error);
  return data;
}
}  // namespace

result<key_pair> load_key_pair(std::string const& cert_file, std::string const& key_file) {
  key_pair kp;
  auto cert = read_whole_file(cert_file);
  if (!cert) return fail(cert.error());
  auto key = read_whole_file(key_file);
  if (!key) return fail(key.error());
  kp.cert_pem = std::move(*cert);
  kp.key_pem = std::move(*key);
  detail::credential check;
  if (auto r = check.load(kp); !r) return fail(r.error());
  return kp;
}

}  // namespace mailroom::net::tls
