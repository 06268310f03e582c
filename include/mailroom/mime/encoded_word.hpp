// RFC 2047 encoded-words ("=?charset?B|Q?text?=") in header field values, decoded to UTF-8 for
// display, sorting (IMAP SORT, RFC 5256) and threading.
//
// Contract: decoding never fails: a word that is malformed (bad base64 or Q escape, no "?="
// terminator, an unknown encoding letter) or names a charset not listed below is left exactly as
// written. The result is always valid UTF-8 and at most 3 bytes per input byte; work is linear
// in the input. No exceptions but std::bad_alloc.
//
// What is decoded, precisely:
// - Words are recognised anywhere, also next to other text ("a=?utf-8?q?b?=" decodes), as mail
//   readers do; RFC 2047 asks for surrounding white space but senders do not always comply.
// - White space (including folding) between two adjacent encoded words is dropped; any other text
//   between words is kept. Adjacent words in the same charset are joined before conversion, so a
//   UTF-8 character split across two words (a common encoder bug) comes out whole.
// - RFC 2231 section 5 language suffixes are accepted and ignored: "=?utf-8*en?q?x?=".
// - Charsets (case-insensitive, with the usual aliases): UTF-8; US-ASCII, ISO-8859-1 and
//   Windows-1252, all three decoded as Windows-1252 (as the WHATWG Encoding Standard does: real
//   mail labelled ASCII or Latin-1 carries Windows-1252 punctuation in 0x80-0x9F, where Latin-1
//   has only unused C1 controls); ISO-8859-15.
// - Invalid UTF-8 (in UTF-8 words or in the raw text around words) is replaced, byte by byte,
//   with U+FFFD; so are the five bytes Windows-1252 leaves undefined.
// - Line ends are unfolded (CR and LF removed) and the value trimmed of leading and trailing
//   white space. A NUL, CR or LF that comes out of a decoded word becomes a space, so a decoded
//   value can never break a header line or an IMAP quoted string.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailroom::mime {

/// Decodes the encoded-words of a raw (possibly folded) header field value to UTF-8.
std::string decode_header_value(std::string_view raw);

/// Converts `bytes` in `charset` (a MIME charset name, case-insensitive, optionally with an
/// RFC 2231 "*language" suffix) to UTF-8 under the rules above; nullopt for an unknown charset.
/// Unlike decode_header_value, control characters are passed through.
std::optional<std::string> charset_to_utf8(std::string_view charset, std::string_view bytes);

}  // namespace mailroom::mime
