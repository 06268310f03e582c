// libFuzzer target: the POP3 response reader (what pop3::client reads from a hostile server) on
// arbitrary bytes, fed in pieces whose sizes come from the input, read as the client would: a
// status line, then a listing or a message when the input's second byte says so.
// Properties checked: no crash; memory bounded by the limits (a status or listing line never
// exceeds max_line, a message never exceeds max_size, unconsumed input never exceeds one line
// plus the piece just fed); errors are final; message content has CRLF line ends only.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/pop3/response_reader.hpp"

using namespace mailroom::pop3;

namespace {

constexpr std::size_t max_line = 64;
constexpr std::size_t max_size = 1024;

bool crlf_only(std::string const& s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t const piece = 1 + data[0] % 64;  // feed in pieces of this size
  unsigned const mode = data[1] % 3;            // after each +OK: 0 nothing, 1 a listing, 2 a message
  std::string_view in(reinterpret_cast<char const*>(data) + 2, size - 2);
  response_reader r(max_line);
  enum { want_status, want_line, want_message } state = want_status;
  std::string message;
  bool failed = false;
  for (std::size_t pos = 0; pos < in.size() && !failed; pos += piece) {
    r.feed(in.substr(pos, piece));
    for (bool more = true; more && !failed;) {
      std::error_code ec;
      switch (state) {
        case want_status: {
          auto s = r.next_status();
          if (!s) { ec = s.error(); break; }
          if (!*s) { more = false; break; }
          if ((*s)->line.size() > max_line) std::abort();
          if ((*s)->k == status::kind::ok && mode == 1) state = want_line;
          if ((*s)->k == status::kind::ok && mode == 2) state = want_message;
          break;
        }
        case want_line: {
          auto l = r.next_line();
          if (!l) { ec = l.error(); break; }
          if (!*l) { more = false; break; }
          if ((*l)->text.size() > max_line) std::abort();
          if ((*l)->end) state = want_status;
          break;
        }
        case want_message: {
          auto d = r.read_message(message, max_size);
          if (!d) { ec = d.error(); break; }
          if (message.size() > max_size) std::abort();
          if (*d) {
            // A bare CR may precede a CRLF, so only LFs are checked.
            if (!crlf_only(message)) std::abort();
            message.clear();
            state = want_status;
          } else {
            more = false;
          }
          break;
        }
      }
      if (ec) {
        failed = true;
        if (r.next_status() || r.next_line()) std::abort();  // errors stick
        std::string sink;
        if (r.read_message(sink, max_size)) std::abort();
      }
    }
    if (!failed && r.buffered() > max_line + 2 + piece) std::abort();
  }
  return 0;
}
