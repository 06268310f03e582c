// How a client protocol (SMTP, POP3, IMAP) uses TLS on a connection that starts in plaintext.
#pragma once

#include <cstdint>

namespace mailroom::net::tls {

enum class policy : std::uint8_t {
  none,           ///< never upgrade (STARTTLS/STLS not sent)
  opportunistic,  ///< upgrade when offered, any certificate; plaintext only when it is not offered
                  ///< (a refused upgrade is the server's reply, a failed handshake an error)
  required,       ///< the upgrade must be offered and succeed; the certificate is not checked
  verify,         ///< as required, and the certificate must verify for the server's name
};

}  // namespace mailroom::net::tls
