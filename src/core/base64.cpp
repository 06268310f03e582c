#include "mailroom/core/base64.hpp"

#include <array>
#include <cstdint>

#include "mailroom/core/error.hpp"

namespace mailroom::base64 {
namespace {

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::uint8_t invalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_reverse() {
  std::array<std::uint8_t, 256> r{};
  for (auto& v : r) v = invalid;
  for (std::size_t i = 0; i < alphabet.size(); ++i) r[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  return r;
}
constexpr auto reverse = make_reverse();

}  // namespace

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                      static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                      static_cast<unsigned char>(bytes[i + 2]);
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 0x3f];
    out += alphabet[(v >> 6) & 0x3f];
    out += alphabet[v & 0x3f];
  }
  std::size_t const rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += alphabet[v >> 18];
    out += alphabet[(v >> 12) & 0x3f];
    out += rest == 2 ? alphabet[(v >> 6) & 0x3f] : '=';
    out += '=';
  }
  return out;
}

result<std::string> decode(std::string_view text) {
  if (text.size() % 4 != 0) return fail(errc::invalid_argument);
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  std::size_t const symbols = text.size() - pad;

  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t acc = 0;
  for (std::size_t i = 0; i < symbols; ++i) {
    std::uint8_t const v = reverse[static_cast<unsigned char>(text[i])];
    if (v == invalid) return fail(errc::invalid_argument);
    acc = acc << 6 | v;
    if (i % 4 == 3) {
      out += static_cast<char>(acc >> 16);
      out += static_cast<char>((acc >> 8) & 0xff);
      out += static_cast<char>(acc & 0xff);
      acc = 0;
    }
  }
  // The final group: 2 symbols carry one byte (4 spare bits), 3 carry two bytes (2 spare bits).
  if (pad == 2) {
    if ((acc & 0x0f) != 0) return fail(errc::invalid_argument);
    out += static_cast<char>(acc >> 4);
  } else if (pad == 1) {
    if ((acc & 0x03) != 0) return fail(errc::invalid_argument);
    out += static_cast<char>(acc >> 10);
    out += static_cast<char>((acc >> 2) & 0xff);
  }
  return out;
}

}  // namespace mailroom::base64
