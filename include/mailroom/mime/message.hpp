// RFC 5322 header fields and the RFC 2045/2046 MIME tree of a message held in memory, as IMAP's
// BODYSTRUCTURE and BODY[section] and the content filters need them.
//
// Contract: parse() never copies the message: the tree holds offsets into it, so the string
// must outlive the tree. It never fails on malformed MIME (a missing boundary makes the rest
// of the part its body, as mail readers do); it fails only when a limit is crossed: nesting
// depth (100), number of parts (10000), one header block's size (1 MiB) or field count
// (10000). Line ends may be CRLF or bare LF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailroom/core/result.hpp"

namespace mailroom::mime {

struct limits {
  std::size_t max_depth = 100;
  std::size_t max_parts = 10000;
  std::size_t max_header_bytes = 1024 * 1024;
  std::size_t max_fields = 10000;
};

struct field {
  std::string_view name;   ///< as written
  std::string_view value;  ///< raw, after the colon, folding kept, without the final line end
};

/// A header field value such as Content-Type's: a token and parameters (RFC 2045 5.1, with
/// RFC 2231 continuations joined and charset'lang'%XX values decoded).
struct parameterized {
  std::string value;  ///< lower-cased token ("text/plain" for Content-Type)
  std::vector<std::pair<std::string, std::string>> params;  ///< names lower-cased, in order
  std::string_view param(std::string_view name) const noexcept;
};
parameterized parse_parameterized(std::string_view raw);

struct part {
  std::size_t begin = 0;        ///< offset of the part's header
  std::size_t body_begin = 0;   ///< offset of the body (after the empty line)
  std::size_t end = 0;          ///< one past the body
  std::vector<field> fields;
  std::string type = "text";    ///< lower-case; defaults per RFC 2045 (message/rfc822 in multipart/digest)
  std::string subtype = "plain";
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<part> children;   ///< multipart parts, or the one message of message/rfc822
  std::size_t body_lines = 0;   ///< line ends in the body (for text/* and message/rfc822)

  std::optional<std::string_view> header(std::string_view name) const noexcept;  ///< first, case-insensitive
  bool multipart() const noexcept { return type == "multipart"; }
  bool is_message() const noexcept { return type == "message" && (subtype == "rfc822" || subtype == "global"); }
};

/// Parses a whole message.
result<part> parse(std::string_view message, limits const& lim = {});

/// The header fields of a block starting at `offset`; returns where the body starts.
result<std::size_t> parse_header(std::string_view message, std::size_t offset, std::vector<field>& out,
                                 limits const& lim = {});

/// Unfolds a raw field value (CRLF followed by white space becomes that white space) and trims it.
std::string unfold(std::string_view raw);

}  // namespace mailroom::mime
