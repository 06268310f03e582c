// libFuzzer target: the SMTP reply parser (what a client reads from a hostile server) on arbitrary
// bytes, fed in pieces whose sizes come from the input.
// Properties checked: no crash; memory bounded by the limits (a reply's text never exceeds what
// its lines can hold); errors are final; a reply rendered again with reply::wire() parses back
// to itself when its text has no control characters (wire() replaces those).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/smtp/reply_parser.hpp"

using namespace mailroom::smtp;

namespace {

bool plain_text(std::string const& s) {
  for (unsigned char c : s)
    if ((c < 32 && c != '\n') || c == 127) return false;
  return true;
}

void check_round_trip(reply const& r) {
  if (!plain_text(r.text)) return;
  reply_parser again({.max_line = 1 << 20, .max_lines = 1 << 20});
  again.feed(r.wire());
  auto back = again.next();
  if (!back || !*back || !(**back == r)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t const piece = 1 + data[0] % 64;  // feed in pieces of this size
  std::string_view in(reinterpret_cast<char const*>(data) + 1, size - 1);
  reply_limits const limits{.max_line = 64, .max_lines = 8};
  reply_parser p(limits);
  bool failed = false;
  for (std::size_t pos = 0; pos < in.size() && !failed; pos += piece) {
    p.feed(in.substr(pos, piece));
    for (;;) {
      auto r = p.next();
      if (!r) {
        failed = true;
        if (p.next()) std::abort();  // errors stick
        break;
      }
      if (!*r) break;
      reply const& got = **r;
      if (got.code < 200 || got.code > 599) std::abort();
      if (got.text.size() > limits.max_lines * (limits.max_line + 1)) std::abort();
      check_round_trip(got);
    }
    // Unparsed input never exceeds one line plus the piece just fed.
    if (!failed && p.buffered() > limits.max_line + 2 + piece) std::abort();
  }
  return 0;
}
