#include <doctest/doctest.h>

#include <asio/io_context.hpp>

#include "mailroom/mta/router.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;
using testing::no_context;
using testing::no_params;
using testing::string_source;

namespace {
address const sender{"s", "sender.test"};
}

namespace {

// Records which recipients and bodies reached it; groups by domain like a remote target.
class recorder final : public delivery::delivery_target {
 public:
  explicit recorder(std::string name) : name_(std::move(name)) {}
  std::vector<std::string> got;
  std::string group_key(address const& rcpt) const override { return text_lower(rcpt.domain); }
  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const&, address const&) override {
    std::unique_ptr<delivery::delivery> d = std::make_unique<rec>(*this);
    co_return d;
  }

 private:
  static std::string text_lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  struct rec final : delivery::delivery {
    explicit rec(recorder& r) : r_(r) {}
    task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
      to_.push_back(to.to_string());
      co_return std::nullopt;
    }
    task<result<void>> body(smtp::message_source& src) override {
      auto all = co_await smtp::read_all(src);
      if (!all) co_return fail(all.error());
      body_ = *all;
      co_return result<void>{};
    }
    task<result<std::string>> commit() override {
      for (auto const& t : to_) r_.got.push_back(r_.name_ + ":" + t + ":" + body_);
      co_return r_.name_;
    }
    void abort() noexcept override {}
    recorder& r_;
    std::vector<std::string> to_;
    std::string body_;
  };
  std::string name_;
};

}  // namespace

TEST_CASE("router: routes by domain, subdomain pattern and *, groups per route and per target") {
  auto local = std::make_shared<recorder>("local");
  auto relay = std::make_shared<recorder>("relay");
  auto any = std::make_shared<recorder>("mx");
  auto r = std::make_shared<mta::router>(
      std::vector<mta::router::route>{{"example.test", local}, {".corp.example", relay}, {"*", any}}, nullptr);
  CHECK(r->route_for("EXAMPLE.test.") == 0);
  CHECK(r->route_for("a.corp.example") == 1);
  CHECK(r->route_for("corp.example") == 2);  // ".corp.example" is for subdomains only
  CHECK(r->route_for("elsewhere.org") == 2);
  address a{"u", "example.test"}, b{"v", "x.corp.example"}, c{"w", "Other.org"}, d{"z", "other.ORG"};
  CHECK(r->group_key(a) != r->group_key(b));
  CHECK(r->group_key(c) == r->group_key(d));  // same route, same domain for the inner target
  asio::io_context io;
  testing::run(io, [&]() -> task<void> {
    auto dl = (co_await r->start(no_context, sender)).value();
    CHECK(!(co_await dl->add_rcpt(c, no_params)));
    CHECK(!(co_await dl->add_rcpt(d, no_params)));
    auto mixed = co_await dl->add_rcpt(a, no_params);  // another route in the same delivery
    REQUIRE(mixed);
    CHECK(mixed->code == 452);
    string_source src("Subject: x\r\n\r\nbody\r\n");
    REQUIRE(co_await dl->body(src));
    CHECK((co_await dl->commit()).value() == "mx");
  }());
  CHECK(any->got.size() == 2);
  CHECK(local->got.empty());
}

TEST_CASE("router: no route and no fallback refuses with 550 5.1.2; discard drops and says so") {
  auto r = std::make_shared<mta::router>(
      std::vector<mta::router::route>{{"junk.test", std::make_shared<mta::discard_target>()}}, nullptr);
  asio::io_context io;
  testing::run(io, [&]() -> task<void> {
    auto dl = (co_await r->start(no_context, sender)).value();
    address nowhere{"u", "nowhere.test"}, junk{"u", "junk.test"};
    auto refused = co_await dl->add_rcpt(nowhere, no_params);
    REQUIRE(refused);
    CHECK(refused->code == 550);
    CHECK(refused->enhanced == std::array<std::uint8_t, 3>{5, 1, 2});
    auto dd = (co_await r->start(no_context, sender)).value();
    CHECK(!(co_await dd->add_rcpt(junk, no_params)));
    string_source src("Subject: x\r\n\r\nbody\r\n");
    REQUIRE(co_await dd->body(src));
    CHECK((co_await dd->commit()).value() == "discarded");
  }());
}
