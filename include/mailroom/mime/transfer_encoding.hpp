// RFC 2045 content-transfer-encodings, decoded the way mail readers decode them: IMAP BINARY
// (RFC 3516) and the content filters take a part's body through decode().
//
// Contract: decoding never fails on malformed input (mail in the wild is full of it): base64
// skips characters outside its alphabet and stops at '='; quoted-printable keeps a '=' that does
// not start a valid escape. Output is never longer than the input. Only an encoding that is not
// one of 7bit, 8bit, binary, base64 and quoted-printable (case-insensitive; empty means 7bit)
// is refused, with nullopt (IMAP's [UNKNOWN-CTE]).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailroom::mime {

std::string decode_base64(std::string_view body);
/// Soft line breaks ("=" at a line end, CRLF or LF, trailing blanks allowed) are removed.
std::string decode_quoted_printable(std::string_view body);
/// The body decoded per `encoding` (a Content-Transfer-Encoding value, comments and blanks
/// allowed around the token); the identity encodings return the body unchanged.
std::optional<std::string> decode(std::string_view body, std::string_view encoding);

}  // namespace mailroom::mime
