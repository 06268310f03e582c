#include <doctest/doctest.h>

#include <cerrno>
#include <system_error>

#include <asio/io_context.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/mta/inbound.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;

namespace {
using testing::no_params;
using testing::string_source;

// A target that fails at one step with a given error, else accepts and stores nothing.
class failing_target final : public delivery::delivery_target {
 public:
  enum class step { none, start, body, commit };
  step at = step::none;
  std::error_code error;
  int aborted = 0;

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const&, address const&) override {
    if (at == step::start) co_return fail(error);
    co_return std::make_unique<d>(*this);
  }

 private:
  struct d final : delivery::delivery {
    failing_target& t;
    explicit d(failing_target& x) : t(x) {}
    task<std::optional<smtp::reply>> add_rcpt(address const&, smtp::rcpt_params const&) override {
      co_return std::nullopt;
    }
    task<result<void>> body(smtp::message_source& src) override {
      if (t.at == step::body) {
        (void)co_await src.read();  // part of it was written when the disk filled up
        co_return fail(t.error);
      }
      auto all = co_await smtp::read_all(src);
      if (!all) co_return fail(all.error());
      co_return result<void>{};
    }
    task<result<std::string>> commit() override {
      if (t.at == step::commit) co_return fail(t.error);
      co_return std::string("id1");
    }
    void abort() noexcept override { ++t.aborted; }
  };
};

struct outcome {
  smtp::reply mail, data;
};

outcome transaction(std::shared_ptr<failing_target> target) {
  asio::io_context io;
  mta::inbound_options o;
  o.target = target;
  auto in = std::make_shared<mta::inbound>(o, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  smtp::session_info info;
  info.remote = {asio::ip::make_address("192.0.2.1"), 40000};
  info.helo = "client.example";
  return testing::run(io, [&]() -> task<outcome> {
    auto h = (co_await in->new_session(info)).value();
    outcome out;
    address const from{"a", "example.org"}, to{"b", "example.org"};
    smtp::mail_params const params{};
    out.mail = co_await h->on_mail(from, params);
    if (!out.mail.positive()) co_return out;
    REQUIRE((co_await h->on_rcpt(to, no_params)).code == 250);
    string_source src("Subject: x\r\n\r\nbody\r\n");
    out.data = co_await h->on_data(src);
    h->on_reset();
    co_return out;
  }());
}

smtp::reply const storage{452, {4, 3, 1}, "Insufficient system storage"};
}  // namespace

TEST_CASE("storage errors: out of space is 452 4.3.1, anything else 451 4.3.0") {
  CHECK(mta::storage_error_reply(std::error_code(ENOSPC, std::system_category())) == storage);
  CHECK(mta::storage_error_reply(std::make_error_code(std::errc::no_space_on_device)) == storage);
  CHECK(mta::storage_error_reply(std::error_code(EDQUOT, std::system_category())) == storage);
  CHECK(mta::storage_error_reply(std::error_code(EDQUOT, std::generic_category())) == storage);
  for (auto ec : {std::error_code(EIO, std::system_category()), std::error_code(EROFS, std::system_category()),
                  std::error_code(errc::io_error), std::error_code()}) {
    CAPTURE(ec.message());
    auto r = mta::storage_error_reply(ec);
    CHECK(r.code == 451);
    CHECK(r.enhanced == std::array<std::uint8_t, 3>{4, 3, 0});
  }
}

TEST_CASE("a target out of space is refused temporarily at MAIL or after DATA, never 250") {
  auto t = std::make_shared<failing_target>();
  SUBCASE("start") {
    t->at = failing_target::step::start;
    t->error = std::error_code(ENOSPC, std::system_category());
    CHECK(transaction(t).mail == storage);
  }
  SUBCASE("body") {
    t->at = failing_target::step::body;
    t->error = std::error_code(EDQUOT, std::system_category());
    auto o = transaction(t);
    CHECK(o.mail.code == 250);
    CHECK(o.data == storage);
    CHECK(t->aborted >= 1);
  }
  SUBCASE("commit") {
    t->at = failing_target::step::commit;
    t->error = std::error_code(ENOSPC, std::system_category());
    auto o = transaction(t);
    CHECK(o.data == storage);
    CHECK(t->aborted >= 1);
  }
  SUBCASE("other errors") {
    t->at = failing_target::step::commit;
    t->error = std::error_code(EIO, std::system_category());
    CHECK(transaction(t).data.code == 451);
  }
  SUBCASE("no error") {
    auto o = transaction(t);
    CHECK(o.data.code == 250);
  }
}
