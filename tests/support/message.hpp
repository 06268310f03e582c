// Test helpers for code that consumes messages.
#pragma once

#include <algorithm>
#include <string>

#include "mailroom/delivery/target.hpp"
#include "mailroom/smtp/server.hpp"

namespace mailroom::testing {

/// A message_source over a string, handed out in pieces of `piece` bytes.
class string_source final : public smtp::message_source {
 public:
  explicit string_source(std::string s, std::size_t piece = 7) : s_(std::move(s)), piece_(piece) {}
  task<result<std::span<char const>>> read() override {
    auto n = std::min(piece_, s_.size() - pos_);
    std::span<char const> out(s_.data() + pos_, n);
    pos_ += n;
    co_return out;
  }
  std::uint64_t size() const noexcept override { return pos_; }

 private:
  std::string s_;
  std::size_t piece_;
  std::size_t pos_ = 0;
};

// g++ 12 destroys aggregate temporaries created inside a co_await expression twice: pass these
// named objects instead of `{}`.
inline smtp::rcpt_params const no_params{};
inline delivery::message_context const no_context{};

}  // namespace mailroom::testing
