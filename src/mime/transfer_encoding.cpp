#include "mailroom/mime/transfer_encoding.hpp"

#include <array>

#include "mailroom/core/text.hpp"

namespace mailroom::mime {
namespace {

constexpr std::array<signed char, 256> base64_table() {
  std::array<signed char, 256> t{};
  for (auto& v : t) v = -1;
  constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < alphabet.size(); ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
  return t;
}
constexpr auto b64 = base64_table();

int hex(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string decode_base64(std::string_view body) {
  std::string out;
  out.reserve(body.size() / 4 * 3 + 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : body) {
    if (c == '=') break;
    auto v = b64[static_cast<unsigned char>(c)];
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string decode_quoted_printable(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  std::size_t i = 0;
  while (i < body.size()) {
    char c = body[i];
    if (c != '=') {
      out += c;
      ++i;
      continue;
    }
    // A soft line break: '=' then optional blanks, then CRLF or LF (or the end).
    std::size_t j = i + 1;
    while (j < body.size() && (body[j] == ' ' || body[j] == '\t')) ++j;
    if (j == body.size() || body[j] == '\n' || (body[j] == '\r' && j + 1 < body.size() && body[j + 1] == '\n')) {
      i = j == body.size() ? j : j + (body[j] == '\r' ? 2 : 1);
      continue;
    }
    if (i + 2 < body.size() && hex(body[i + 1]) >= 0 && hex(body[i + 2]) >= 0) {
      out += static_cast<char>(hex(body[i + 1]) * 16 + hex(body[i + 2]));
      i += 3;
      continue;
    }
    out += '=';  // not an escape: kept as written
    ++i;
  }
  return out;
}

std::optional<std::string> decode(std::string_view body, std::string_view encoding) {
  // The token, without blanks and RFC 822 comments around it.
  std::string token;
  int depth = 0;
  for (char c : encoding) {
    if (c == '(') ++depth;
    else if (c == ')' && depth > 0) --depth;
    else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '"') token += c;
  }
  token = text::to_lower(token);
  if (token.empty() || token == "7bit" || token == "8bit" || token == "binary") return std::string(body);
  if (token == "base64") return decode_base64(body);
  if (token == "quoted-printable") return decode_quoted_printable(body);
  return std::nullopt;
}

}  // namespace mailroom::mime
