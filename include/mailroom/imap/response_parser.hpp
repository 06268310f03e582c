// IMAP4rev2/rev1 response reader without I/O (RFC 9051 7, 9 "response"), for the client side:
// bytes in, whole responses out, literals either kept, streamed out or skipped.
//
// Contract: feed() takes any slice of the input; next() then reports, in order,
//  - need_more: feed more bytes;
//  - literal: a literal {n} (or literal8 ~{n}) was announced inside the current response. Before
//    calling next() again the caller may choose with on_literal(): keep (default: the octets
//    become the string value), stream (the octets come out as literal_data events, the value
//    stays empty) or discard (they are skipped). `key` is the atom right before the literal in
//    its list (e.g. "BODY[]") and `in_fetch` says the literal is a top-level attribute of a
//    "* n FETCH (...)" response, so a client can stream a message body and keep the rest;
//  - literal_data: a piece of a streamed literal; `data` stays valid until the next call;
//  - response: one complete response (untagged "*", tagged, or "+" continuation).
// Status responses (OK, NO, BAD, BYE, PREAUTH) keep their resp-text-code and text unparsed;
// other responses are tokenised into imap::value (atoms, strings, NIL, lists). An atom may hold
// a bracketed section ("BODY[HEADER.FIELDS (SUBJECT)]<0>") as one token. Lines end with CRLF;
// a bare LF is accepted.
// Errors (imap::errc) are final: every later next() returns the same error.
// Limits: max_line octets per line outside literals, literals of max_literal octets (any mode),
// list nesting of max_depth, and per response at most max_literal + max_line octets held and
// max_tokens tokens. Memory stays within those plus one feed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/core/result.hpp"
#include "mailroom/imap/error.hpp"
#include "mailroom/imap/parser.hpp"  // value

namespace mailroom::imap {

struct response_limits {
  std::size_t max_line = 65536;
  std::uint64_t max_literal = 64 * 1024 * 1024;
  std::size_t max_depth = 64;
  std::size_t max_tokens = 100000;
};

struct response {
  enum class kind : std::uint8_t { untagged, tagged, continuation };
  kind k = kind::untagged;
  std::string tag;                     ///< tagged only
  std::string status;                  ///< "OK", "NO", "BAD", "BYE", "PREAUTH" (upper-case); empty otherwise
  std::string code;                    ///< the resp-text-code without its brackets ("UIDNEXT 4")
  std::string text;                    ///< status text; a continuation's text (base64 for SASL)
  std::optional<std::uint32_t> number; ///< "* 3 EXISTS", "* 3 FETCH (...)"
  std::string name;                    ///< data responses: "EXISTS", "FETCH", "CAPABILITY", ... (upper-case)
  std::vector<value> items;            ///< the tokens after the name (FETCH: one list)
  std::string line;                    ///< the first line as received, without its line end

  bool is_status(std::string_view s) const noexcept { return status == s; }
};

enum class literal_mode : std::uint8_t { keep, stream, discard };

class response_parser {
 public:
  explicit response_parser(response_limits limits = {}) : limits_(limits) {}

  struct event {
    enum class kind : std::uint8_t { need_more, literal, literal_data, response } k = kind::need_more;
    std::uint64_t literal_size = 0;  ///< literal
    std::string key;                 ///< literal: the atom before it in its list, or empty
    bool in_fetch = false;           ///< literal: a top-level FETCH attribute value
    std::string_view data;           ///< literal_data
    imap::response resp;             ///< response
  };

  void feed(std::string_view bytes);
  result<event> next();
  /// After a literal event: what to do with its octets (keep unless called).
  void on_literal(literal_mode m) noexcept { mode_ = m; }
  /// Bytes fed but not yet consumed (to discard plaintext pipelined before a TLS upgrade).
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  void discard_buffered() noexcept;

 private:
  result<event> fail_with(errc e);
  result<bool> head(std::string_view seg, std::size_t& i);        // true: the response is complete
  result<bool> tokens(std::string_view seg, std::size_t i, event& ev);  // true: complete; false: literal
  void compact();

  enum class state : std::uint8_t { start, line, literal };
  response_limits limits_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::size_t scanned_ = 0;  // no '\n' in [pos_, scanned_)
  state st_ = state::start;
  std::error_code error_;
  response cur_;
  std::vector<value> stack_;  // open lists; stack_[0] holds the response's items
  std::uint64_t literal_left_ = 0;
  literal_mode mode_ = literal_mode::keep;
  std::uint64_t held_ = 0;
  std::size_t ntokens_ = 0;
};

}  // namespace mailroom::imap
