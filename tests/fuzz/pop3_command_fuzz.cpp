// libFuzzer: POP3 command lines and the multi-line encoder. The first byte picks a TOP limit;
// the rest is both a command line and a message body. Properties checked: the encoder's output
// never contains a line that is exactly "." before the terminator, and ends with CRLF.CRLF.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "mailroom/pop3/command.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<char const*>(data) + 1, size - 1);
  auto c = mailroom::pop3::parse_command(in);
  if (c.args > 0) (void)mailroom::pop3::parse_number(c.arg1);
  std::optional<std::uint32_t> top;
  if (data[0] & 1) top = data[0] >> 1;
  mailroom::pop3::multiline_encoder enc(top);
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 1 + data[0] % 13) enc.feed(in.substr(i, 1 + data[0] % 13), out);
  enc.finish(out);
  if (out.size() < 3 || out.compare(out.size() - 3, 3, ".\r\n") != 0) std::abort();
  if (out.size() > 3 && out.compare(out.size() - 5, 5, "\r\n.\r\n") != 0) std::abort();
  if (out.rfind(".\r\n", 0) == 0 && out.size() > 3) std::abort();          // a lone "." first line
  if (out.find("\r\n.\r\n") != out.size() - 5 && out.size() > 3) std::abort();  // an early terminator
  for (std::size_t i = 0; i < out.size(); ++i)  // every LF is preceded by CR, every CR followed by LF
    if ((out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) || (out[i] == '\r' && (i + 1 == out.size() || out[i + 1] != '\n')))
      std::abort();
  return 0;
}
