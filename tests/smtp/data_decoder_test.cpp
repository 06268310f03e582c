#include <doctest/doctest.h>

#include <string>

#include "mailroom/smtp/data_decoder.hpp"

using mailroom::smtp::data_decoder;

namespace {
struct decoded {
  std::string body;
  std::size_t consumed = 0;
  bool done = false;
  std::uint64_t bare = 0;
};

// Feeds `in` in pieces of `piece` bytes, as a network would.
decoded decode(std::string const& in, std::size_t piece = SIZE_MAX) {
  data_decoder d;
  decoded out;
  std::size_t off = 0;
  while (off < in.size() && !out.done) {
    std::size_t n = std::min(piece, in.size() - off);
    auto st = d.decode(std::span<char const>(in.data() + off, n), out.body);
    off += st.consumed;
    out.done = st.done;
    if (!st.done) CHECK(st.consumed == n);
  }
  out.consumed = off;
  out.bare = d.bare_newlines();
  return out;
}
}  // namespace

TEST_CASE("plain message ends at CRLF.CRLF and leaves what follows") {
  for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, SIZE_MAX}) {
    CAPTURE(piece);
    auto r = decode("Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", piece);
    CHECK(r.done);
    CHECK(r.body == "Subject: x\r\n\r\nhello\r\n");
    CHECK(r.consumed == std::string("Subject: x\r\n\r\nhello\r\n.\r\n").size());
    CHECK(r.bare == 0);
  }
}

TEST_CASE("empty message: the CRLF of the DATA line counts") {
  auto r = decode(".\r\n");
  CHECK(r.done);
  CHECK(r.body.empty());
}

TEST_CASE("dot-stuffing is removed only at real line starts") {
  auto r = decode("..leading\r\nmid.dle\r\n...\r\n.\r\n");
  CHECK(r.done);
  CHECK(r.body == ".leading\r\nmid.dle\r\n..\r\n");
}

TEST_CASE("SMTP smuggling sequences never end the message") {
  // Each of these is an end-of-data marker to some lenient server; here they are data.
  char const* const cases[] = {
      "a\n.\nMAIL FROM:<evil@x>\r\n",   // \n.\n
      "a\r.\r\nMAIL FROM:<evil@x>\r\n",  // \r.\r\n
      "a\n.\r\nMAIL FROM:<evil@x>\r\n",  // \n.\r\n
      "a\r\n.\nMAIL FROM:<evil@x>\r\n",  // \r\n.\n
      "a\r\n.\rMAIL FROM:<evil@x>\r\n",  // \r\n.\r
      "a\r.\nMAIL FROM:<evil@x>\r\n",    // \r.\n
  };
  for (auto const* c : cases) {
    CAPTURE(c);
    for (std::size_t piece : {std::size_t{1}, SIZE_MAX}) {
      auto r = decode(c, piece);
      CHECK_FALSE(r.done);
      CHECK(r.bare > 0);
      CHECK(r.body.find("MAIL FROM:<evil@x>") != std::string::npos);
      // Only now does the real terminator end it, as one message.
      data_decoder d;
      std::string body;
      std::string all = std::string(c) + ".\r\n";
      auto st = d.decode(std::span<char const>(all.data(), all.size()), body);
      CHECK(st.done);
      CHECK(st.consumed == all.size());
    }
  }
}

TEST_CASE("bare line ends come out as CRLF") {
  auto r = decode("a\nb\rc\r\n.\r\n");
  CHECK(r.done);
  CHECK(r.body == "a\r\nb\r\nc\r\n");
  CHECK(r.bare == 2);
}

TEST_CASE("a lone dot before a bare line end is data, not stuffing") {
  auto r = decode("x\r\n.\ny\r\n.\r\n");
  CHECK(r.done);
  CHECK(r.body == "x\r\n.\r\ny\r\n");
}

TEST_CASE("a stuffed dot after a bare LF is unstuffed, as the client meant") {
  auto r = decode("a\n..b\r\n.\r\n");  // smtplib sends bytes with LF line ends this way
  CHECK(r.done);
  CHECK(r.body == "a\r\n.b\r\n");
}

TEST_CASE("output room limits what is kept and counts the rest") {
  data_decoder d;
  std::string body;
  std::string in = "0123456789\r\n.\r\n";
  auto st = d.decode(std::span<char const>(in.data(), in.size()), body, 5);
  CHECK(st.done);
  CHECK(body == "01234");
  CHECK(d.overflow() == 7);
}

TEST_CASE("NUL and 8-bit bytes pass through unchanged") {
  std::string in("a\0b\xff\r\n.\r\n", 9);
  auto r = decode(in);
  CHECK(r.done);
  CHECK(r.body == std::string("a\0b\xff\r\n", 6));
}
