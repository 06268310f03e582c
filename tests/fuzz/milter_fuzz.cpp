// libFuzzer target: the milter response decoder (what the MTA reads from a hostile milter) on
// arbitrary bytes framed by packet_reader, fed in pieces whose sizes come from the input.
// Properties checked: no crash; errors are final; buffered bytes stay within one packet plus the
// piece just fed; a decoded response encodes back to a packet that decodes to the same value
// (SMTP reply text only when it has no control characters, which reply::wire() replaces); a
// decoded header change applied to a small message gives an error or a message, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mailroom/filter/milter.hpp"

using namespace mailroom::filter::milter;

namespace {

bool plain(std::string const& s) {
  for (unsigned char c : s)
    if ((c < 32 && c != '\n') || c == 127) return false;
  return true;
}

void check_round_trip(response const& r) {
  if (auto v = std::get_if<verdict>(&r); v && v->smtp && !plain(v->smtp->text)) return;
  packet_reader again(1 << 22);
  again.feed(encode_response(r));
  auto p = again.next();
  if (!p || !*p) std::abort();
  auto back = decode_response(**p);
  if (!back || !(*back == r)) std::abort();
}

void check_apply(modification const& m) {
  std::vector<modification> one{m};
  auto a = apply("Received: x\r\nSubject: s\r\n\r\nbody\r\n", one, m.index % 2 == 0);
  if (a && a->message.size() > 64 + m.name.size() + 2 * m.value.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t const piece = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<char const*>(data) + 1, size - 1);
  std::size_t const max_packet = 4096;
  packet_reader reader(max_packet);
  bool failed = false;
  for (std::size_t pos = 0; pos < in.size() && !failed; pos += piece) {
    reader.feed(in.substr(pos, piece));
    for (;;) {
      auto p = reader.next();
      if (!p) {
        failed = true;
        if (reader.next()) std::abort();  // errors stick
        break;
      }
      if (!*p) break;
      if ((*p)->data.size() + 1 > max_packet) std::abort();
      (void)decode_negotiation(**p);
      auto r = decode_response(**p);
      if (!r) continue;
      check_round_trip(*r);
      if (auto m = std::get_if<modification>(&*r)) check_apply(*m);
    }
    if (!failed && reader.buffered() > max_packet + 4 + piece) std::abort();
  }
  return 0;
}
