// A filter that keeps nothing per connection: its per-connection state forwards each phase to
// the filter's own virtual functions, and phases it does not override answer accept.
#pragma once

#include <memory>
#include <string_view>

#include "mailroom/filter/filter.hpp"

namespace mailroom::filter::detail {

class stateless_filter : public filter {
 public:
  virtual task<result<verdict>> connect(smtp::session_info const&) { co_return verdict{}; }
  virtual task<result<verdict>> mail(transaction&) { co_return verdict{}; }
  virtual task<result<verdict>> rcpt(transaction&, address const&) { co_return verdict{}; }
  virtual task<result<verdict>> message(transaction&, std::string_view) { co_return verdict{}; }
  task<result<std::unique_ptr<filter_state>>> begin(smtp::session_info const&) override {
    co_return std::make_unique<forwarding>(*this);
  }

 private:
  class forwarding final : public filter_state {
   public:
    explicit forwarding(stateless_filter& f) : f_(f) {}
    task<result<verdict>> on_connect(smtp::session_info const& s) override { co_return co_await f_.connect(s); }
    task<result<verdict>> on_mail(transaction& t) override { co_return co_await f_.mail(t); }
    task<result<verdict>> on_rcpt(transaction& t, address const& r) override { co_return co_await f_.rcpt(t, r); }
    task<result<verdict>> on_message(transaction& t, std::string_view m) override { co_return co_await f_.message(t, m); }

   private:
    stateless_filter& f_;
  };
};

}  // namespace mailroom::filter::detail
