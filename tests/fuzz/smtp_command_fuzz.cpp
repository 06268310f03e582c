// libFuzzer target: the SMTP command-line parsers and the DATA decoder on arbitrary bytes.
// Properties checked: no crash, no unbounded growth, and parsed values stay within the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailroom/smtp/command.hpp"
#include "mailroom/smtp/data_decoder.hpp"

using namespace mailroom::smtp;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view in(reinterpret_cast<char const*>(data), size);
  extension_set ext;
  ext.max_size = 1 << 20;
  // Each line as a command, as the session would see it.
  std::size_t pos = 0;
  while (pos <= in.size()) {
    auto nl = in.find('\n', pos);
    auto line = in.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    auto c = parse_command(line);
    switch (c.v) {
      case verb::mail:
        if (auto m = parse_mail(c.args, ext); m && m->from.to_string().size() > line.size() * 2 + 2) std::abort();
        break;
      case verb::rcpt:
        if (auto r = parse_rcpt(c.args, ext); r && r->params.orcpt.size() > line.size()) std::abort();
        break;
      case verb::bdat:
        (void)parse_bdat(c.args);
        break;
      case verb::auth:
        (void)parse_auth(c.args);
        break;
      default:
        (void)parse_helo(c.args);
        break;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  // The whole input as a DATA stream, fed in two pieces.
  data_decoder d;
  std::string out;
  auto half = size / 2;
  auto a = d.decode({in.data(), half}, out);
  if (!a.done) {
    auto b = d.decode({in.data() + half, size - half}, out);
    (void)b;
  }
  if (out.size() > size * 2) std::abort();  // at most CRLF for each bare line end
  return 0;
}
