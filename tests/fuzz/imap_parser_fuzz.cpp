// libFuzzer: the IMAP command reader fed in slices chosen by the first byte; checks that it
// never holds more than its limits and always makes progress.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mailroom/imap/parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  mailroom::imap::parser_limits limits;
  limits.max_line = 1024;
  limits.max_literal = 2048;
  limits.max_append_literal = 4096;
  limits.max_command = 8192;
  limits.max_depth = 20;
  limits.literal_plus = data[0] & 1;
  mailroom::imap::parser p(limits);
  std::size_t piece = 1 + data[0] % 17;
  std::string_view in(reinterpret_cast<char const*>(data) + 1, size - 1);
  for (std::size_t i = 0; i < in.size(); i += piece) {
    p.feed(in.substr(i, piece));
    for (int guard = 0;; ++guard) {
      if (guard > 100000) std::abort();  // next() must reach need_more
      auto e = p.next();
      if (e.k == mailroom::imap::parser::event::kind::need_more) break;
      if (e.k == mailroom::imap::parser::event::kind::command)
        for (auto const& a : e.cmd.args)
          if (a.is_string_like()) (void)mailroom::imap::parse_sequence_set(a.text, 100);
    }
    if (p.buffered() > limits.max_line + 64 * 1024 + piece) std::abort();
  }
  return 0;
}
