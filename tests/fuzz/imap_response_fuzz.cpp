// libFuzzer target: the IMAP response parser (what the client reads from a hostile server) on
// arbitrary bytes, fed in pieces whose sizes come from the input, with literal modes chosen by
// the input too.
// Properties checked: no crash; errors are final; unparsed input stays within one line plus the
// piece just fed (outside literals); streamed literal data never exceeds the announced size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailroom/imap/response_parser.hpp"

using namespace mailroom::imap;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t const piece = 1 + data[0] % 64;
  auto const mode = static_cast<literal_mode>(data[1] % 3);
  std::string_view in(reinterpret_cast<char const*>(data) + 2, size - 2);
  response_limits const limits{.max_line = 128, .max_literal = 4096, .max_depth = 8, .max_tokens = 256};
  response_parser p(limits);
  std::uint64_t literal_left = 0;
  for (std::size_t pos = 0; pos < in.size(); pos += piece) {
    p.feed(in.substr(pos, piece));
    for (;;) {
      auto ev = p.next();
      if (!ev) {
        if (p.next()) std::abort();  // errors stick
        return 0;
      }
      using kind = response_parser::event::kind;
      if (ev->k == kind::need_more) break;
      if (ev->k == kind::literal) {
        if (ev->literal_size > limits.max_literal) std::abort();
        literal_left = ev->literal_size;
        p.on_literal(mode);
      } else if (ev->k == kind::literal_data) {
        if (mode != literal_mode::stream || ev->data.size() > literal_left) std::abort();
        literal_left -= ev->data.size();
      } else if (literal_left = 0; ev->resp.line.size() > limits.max_line) {
        std::abort();
      }
    }
    if (literal_left == 0 && p.buffered() > limits.max_line + 2 + piece) std::abort();
  }
  return 0;
}
