// FETCH items computed from a message's MIME tree: ENVELOPE, BODY and BODYSTRUCTURE
// (RFC 9051 7.5.2), and IMAP string quoting.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "mailroom/mime/message.hpp"

namespace mailroom::imap {

/// A string as IMAP sends it: quoted when safe, otherwise a literal ({n} CRLF bytes).
std::string imap_string(std::string_view s);
/// NIL for nullopt.
std::string nstring(std::optional<std::string_view> s);

/// The ENVELOPE of the message whose header is `p`'s (Sender and Reply-To default to From).
std::string envelope(mime::part const& p);
/// BODYSTRUCTURE (extensible = true) or BODY of part `p` of message `msg`.
std::string body_structure(std::string_view msg, mime::part const& p, bool extensible);

}  // namespace mailroom::imap
