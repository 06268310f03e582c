// Base64 (RFC 4648 section 4, standard alphabet, with padding) as protocols put it on the wire:
// SASL exchanges in SMTP AUTH / IMAP AUTHENTICATE, SCRAM attributes.
#pragma once

#include <string>
#include <string_view>

#include "mailroom/core/result.hpp"

namespace mailroom::base64 {

/// Encodes bytes with '=' padding and no line breaks.
std::string encode(std::string_view bytes);

/// Decodes canonical base64 only: length a multiple of 4, '=' only as the final one or two
/// characters, unused bits of the last symbol zero, no whitespace or line breaks. Anything else
/// is errc::invalid_argument, so every accepted text has exactly one encoding. "" decodes to "".
result<std::string> decode(std::string_view text);

}  // namespace mailroom::base64
