#include <doctest/doctest.h>

#include <functional>
#include <map>

#include <asio/io_context.hpp>

#include "mailroom/core/error.hpp"
#include "mailroom/filter/filter.hpp"
#include "mailroom/mta/inbound.hpp"
#include "support/helpers.hpp"
#include "support/message.hpp"

using namespace mailroom;
namespace flt = mailroom::filter;
using flt::verdict;

namespace {
using testing::no_params;
using testing::string_source;

// Keeps what reached it: the content, the recipients, whether it was held or committed.
class recording_target final : public delivery::delivery_target {
 public:
  std::string content;
  std::vector<std::string> rcpts;
  bool held = false, committed = false;
  int aborted = 0;

  task<result<std::unique_ptr<delivery::delivery>>> start(delivery::message_context const&, address const&) override {
    co_return std::make_unique<d>(*this);
  }

 private:
  struct d final : delivery::delivery {
    recording_target& t;
    explicit d(recording_target& x) : t(x) {}
    task<std::optional<smtp::reply>> add_rcpt(address const& to, smtp::rcpt_params const&) override {
      t.rcpts.push_back(to.to_string());
      co_return std::nullopt;
    }
    task<result<void>> body(smtp::message_source& src) override {
      auto all = co_await smtp::read_all(src);
      if (!all) co_return fail(all.error());
      t.content = *all;
      co_return result<void>{};
    }
    task<result<std::string>> commit() override {
      t.committed = true;
      co_return std::string("id1");
    }
    bool hold() override { return t.held = true; }
    void abort() noexcept override { ++t.aborted; }
  };
};

// A filter whose answers per phase the test sets; it records what it saw.
struct scripted {
  std::map<std::string, result<verdict>> answers;  // "connect", "helo", "mail", "rcpt:<addr>", "message"
  std::vector<flt::auth_result> results_at_mail;
  bool wants = false;
  std::vector<std::string> seen;
  std::string message_seen;
  std::size_t results_seen_at_message = 0;
};

class scripted_filter final : public flt::filter {
 public:
  scripted_filter(std::string name, scripted& s) : name_(std::move(name)), s_(s) {}
  std::string_view name() const override { return name_; }
  bool wants_message() const override { return s_.wants; }
  task<result<std::unique_ptr<flt::filter_state>>> begin(smtp::session_info const&) override {
    if (auto it = s_.answers.find("begin"); it != s_.answers.end() && !it->second) co_return fail(it->second.error());
    co_return std::make_unique<state>(s_);
  }

 private:
  struct state final : flt::filter_state {
    scripted& s;
    explicit state(scripted& x) : s(x) {}
    result<verdict> answer(std::string const& key) {
      s.seen.push_back(key);
      auto it = s.answers.find(key);
      return it == s.answers.end() ? result<verdict>(verdict{}) : it->second;
    }
    task<result<verdict>> on_connect(smtp::session_info const&) override { co_return answer("connect"); }
    task<result<verdict>> on_helo(smtp::session_info const&, std::string_view name) override {
      co_return answer("helo:" + std::string(name));
    }
    task<result<verdict>> on_mail(flt::transaction& t) override {
      for (auto const& r : s.results_at_mail) t.results.push_back(r);
      co_return answer("mail");
    }
    task<result<verdict>> on_rcpt(flt::transaction& t, address const& rcpt) override {
      co_return answer("rcpt:" + rcpt.to_string());
    }
    task<result<verdict>> on_message(flt::transaction& t, std::string_view message) override {
      s.message_seen = std::string(message);
      s.results_seen_at_message = t.results.size();
      co_return answer("message");
    }
  };
  std::string name_;
  scripted& s_;
};

struct outcome {
  std::optional<smtp::reply> refused;  // at connect
  smtp::reply helo, mail, data;
  std::vector<smtp::reply> rcpt;
};

outcome session(std::vector<flt::chain_entry> chain, std::shared_ptr<recording_target> target,
                std::string message = "Subject: x\r\n\r\nbody\r\n") {
  asio::io_context io;
  mta::inbound_options o;
  o.target = target;
  o.hostname = "mx.example.test";
  o.filters = std::move(chain);
  auto in = std::make_shared<mta::inbound>(o, log::logger(std::make_shared<log::null_sink>(), log::level::off));
  smtp::session_info info;
  info.id = "s1";
  info.remote = {asio::ip::make_address("192.0.2.1"), 40000};
  return testing::run(io, [&]() -> task<outcome> {
    outcome out;
    auto h = co_await in->new_session(info);
    if (!h) {
      out.refused = h.error();
      co_return out;
    }
    out.helo = co_await (*h)->on_helo("client.example");
    info.helo = "client.example";
    address const from{"a", "example.org"};
    smtp::mail_params const params{};
    out.mail = co_await (*h)->on_mail(from, params);
    if (!out.mail.positive()) co_return out;
    for (char const* user : {"b", "c"}) {
      address const to{user, "example.test"};
      out.rcpt.push_back(co_await (*h)->on_rcpt(to, no_params));
    }
    string_source src(message);
    out.data = co_await (*h)->on_data(src);
    (*h)->on_reset();
    co_return out;
  }());
}

flt::chain_entry entry(std::string name, scripted& s, flt::failure_policy p = flt::failure_policy::tempfail) {
  return {std::make_shared<scripted_filter>(std::move(name), s), p};
}

verdict with_header(std::string h) {
  verdict v;
  v.add_headers.push_back(std::move(h));
  return v;
}

}  // namespace

TEST_CASE("filters see every phase in order; results become one Authentication-Results under Received:") {
  scripted spf, body;
  spf.results_at_mail.push_back({"spf", "pass", "", {{"smtp.mailfrom", "example.org"}}, ""});
  spf.answers["mail"] = with_header("Received-SPF: pass (test) client-ip=192.0.2.1");
  body.wants = true;
  body.answers["message"] = with_header("X-Scanned: yes");
  auto target = std::make_shared<recording_target>();
  // A forged claim in our name goes; another host's results stay.
  auto out = session({entry("spf", spf), entry("body", body)}, target,
                     "Authentication-Results: mx.example.test; dkim=pass\r\n header.d=forged.example\r\n"
                     "Authentication-Results: other.example; spf=fail\r\nSubject: x\r\n\r\nbody\r\n");
  CHECK(out.data.code == 250);
  CHECK(spf.seen == std::vector<std::string>{"connect", "helo:client.example", "mail", "rcpt:b@example.test",
                                             "rcpt:c@example.test"});
  CHECK(body.results_seen_at_message == 1);
  CHECK(body.message_seen.find("forged.example") != std::string::npos);  // filters see what came
  auto const& c = target->content;
  REQUIRE(c.rfind("Received: from client.example", 0) == 0);
  auto ar = c.find("Authentication-Results: mx.example.test;\r\n\tspf=pass smtp.mailfrom=example.org\r\n");
  auto rspf = c.find("Received-SPF: pass (test) client-ip=192.0.2.1\r\n");
  auto scanned = c.find("X-Scanned: yes\r\n");
  auto subject = c.find("Subject: x\r\n");
  CHECK(ar != std::string::npos);
  CHECK(ar < rspf);
  CHECK(rspf < scanned);
  CHECK(scanned < subject);
  CHECK(c.find("forged.example") == std::string::npos);
  CHECK(c.find("Authentication-Results: other.example; spf=fail\r\n") != std::string::npos);
  CHECK(c.substr(c.size() - 6) == "body\r\n");
  CHECK(target->committed);
  CHECK_FALSE(target->held);
}

TEST_CASE("a rejected recipient is refused alone; a rejected message is refused whole") {
  scripted s;
  s.wants = true;
  s.answers["rcpt:c@example.test"] = verdict::reject({550, {5, 7, 1}, "c is not welcome"});
  auto target = std::make_shared<recording_target>();
  auto out = session({entry("s", s)}, target);
  REQUIRE(out.rcpt.size() == 2);
  CHECK(out.rcpt[0].code == 250);
  CHECK(out.rcpt[1].code == 550);
  CHECK(out.rcpt[1].text == "c is not welcome");
  CHECK(target->rcpts == std::vector<std::string>{"b@example.test"});
  CHECK(out.data.code == 250);

  scripted v;
  v.wants = true;
  verdict virus;
  virus.what = verdict::kind::reject;  // no reply: the chain's default
  v.answers["message"] = virus;
  auto t2 = std::make_shared<recording_target>();
  out = session({entry("v", v)}, t2);
  CHECK(out.data.code == 550);
  CHECK(out.data.enhanced == std::array<std::uint8_t, 3>{5, 7, 1});
  CHECK_FALSE(t2->committed);
  CHECK(t2->aborted >= 1);
}

TEST_CASE("a refusal at connect, HELO or MAIL") {
  scripted s;
  verdict no;
  no.what = verdict::kind::reject;
  s.answers["connect"] = no;
  auto out = session({entry("s", s)}, std::make_shared<recording_target>());
  REQUIRE(out.refused);
  CHECK(out.refused->code == 554);

  scripted h;
  h.answers["helo:client.example"] = verdict::reject({550, {5, 7, 1}, "bad HELO"});
  out = session({entry("h", h)}, std::make_shared<recording_target>());
  CHECK(out.helo.code == 550);

  scripted m;
  m.answers["mail"] = verdict::tempfail({451, {4, 7, 1}, "greylisted"});
  auto target = std::make_shared<recording_target>();
  out = session({entry("m", m)}, target);
  CHECK(out.mail.code == 451);
  CHECK(out.mail.text == "greylisted");
  CHECK(out.rcpt.empty());
  CHECK_FALSE(target->committed);
}

TEST_CASE("a failing filter: tempfail by default, or skipped when its policy says accept") {
  scripted down;
  down.answers["mail"] = result<verdict>(fail(std::make_error_code(std::errc::connection_refused)));
  auto out = session({entry("down", down)}, std::make_shared<recording_target>());
  CHECK(out.mail.code == 451);
  CHECK(out.mail.enhanced == std::array<std::uint8_t, 3>{4, 7, 0});

  auto target = std::make_shared<recording_target>();
  out = session({entry("down", down, flt::failure_policy::accept)}, target);
  CHECK(out.mail.code == 250);
  CHECK(out.data.code == 250);
  CHECK(target->committed);

  scripted unreachable;
  unreachable.answers["begin"] = result<verdict>(fail(std::make_error_code(std::errc::timed_out)));
  out = session({entry("u", unreachable)}, std::make_shared<recording_target>());
  REQUIRE(out.refused);
  CHECK(out.refused->code == 421);
  out = session({entry("u", unreachable, flt::failure_policy::accept)}, std::make_shared<recording_target>());
  CHECK_FALSE(out.refused);
  CHECK(out.data.code == 250);
}

TEST_CASE("quarantine holds, discard drops with 250, replace_message rewrites") {
  scripted q;
  q.wants = true;
  verdict hold;
  hold.what = verdict::kind::quarantine;
  q.answers["message"] = hold;
  auto target = std::make_shared<recording_target>();
  auto out = session({entry("q", q)}, target);
  CHECK(out.data.code == 250);
  CHECK(target->held);
  CHECK(target->committed);

  scripted d;
  verdict drop;
  drop.what = verdict::kind::discard;
  d.answers["rcpt:b@example.test"] = drop;
  target = std::make_shared<recording_target>();
  out = session({entry("d", d)}, target);
  CHECK(out.data.code == 250);
  CHECK_FALSE(target->committed);

  scripted r, after;
  r.wants = after.wants = true;
  verdict rewrite;
  rewrite.replace_message = "Subject: rewritten\r\n\r\nnew body\r\n";
  r.answers["message"] = rewrite;
  target = std::make_shared<recording_target>();
  out = session({entry("r", r), entry("after", after)}, target);
  CHECK(out.data.code == 250);
  CHECK(after.message_seen == "Subject: rewritten\r\n\r\nnew body\r\n");  // later filters see the change
  CHECK(target->content.find("Subject: rewritten\r\n\r\nnew body\r\n") != std::string::npos);
  CHECK(target->content.find("Subject: x") == std::string::npos);
}

TEST_CASE("Authentication-Results formatting and removal of claims in our name") {
  flt::auth_result r{"dkim", "fail", "body hash mismatch", {{"header.d", "example.org"}, {"header.b", "abc/+="}}, ""};
  CHECK(flt::format(r) == "dkim=fail reason=\"body hash mismatch\" header.d=example.org header.b=\"abc/+=\"");
  std::vector<flt::auth_result> none;
  CHECK(flt::authentication_results_header("mx.example", none) == "Authentication-Results: mx.example; none\r\n");

  CHECK_FALSE(flt::remove_claimed_results("Subject: a\r\n\r\nAuthentication-Results: mx.example; x\r\n", "mx.example"));
  CHECK_FALSE(flt::remove_claimed_results("Authentication-Results: mx.example.org; spf=pass\r\n\r\n", "mx.example"));
  auto cleaned = flt::remove_claimed_results(
      "A: 1\r\nauthentication-results:\r\n  MX.Example;\r\n  spf=pass\r\nB: 2\r\n\r\nbody\r\n", "mx.example");
  REQUIRE(cleaned);
  CHECK(*cleaned == "A: 1\r\nB: 2\r\n\r\nbody\r\n");
  // A message without a body separator, and one that is only a header.
  cleaned = flt::remove_claimed_results("Authentication-Results: mx.example (x); dkim=pass", "mx.example");
  REQUIRE(cleaned);
  CHECK(cleaned->empty());
}

TEST_CASE("header_values: every field of a name, unfolded, only from the header") {
  std::string const m = "From: a@example.org\r\nTo: x\r\nfrom:\r\n  b@example.net \r\n\r\nFrom: body@example.com\r\n";
  CHECK(flt::header_values(m, "From") == std::vector<std::string>{"a@example.org", "b@example.net"});
  CHECK(flt::header_values(m, "Cc").empty());
  flt::auth_result r{"dmarc", "fail", "", {{"header.from", "example.org"}}, "p=reject (dis=none)"};
  CHECK(flt::format(r) == "dmarc=fail (p=reject  dis=none ) header.from=example.org");
}

TEST_CASE("claims in our name are found behind comments and in quoted strings, not in longer names") {
  auto cleaned = flt::remove_claimed_results(
      "Authentication-Results: (trust (me)) MX.example; dkim=pass\r\n"
      "Authentication-Results: \"mx.example\"; spf=pass\r\n"
      "Authentication-Results: mx.example.org; spf=pass\r\n"
      "Authentication-Results: (mx.example) other.example; spf=pass\r\n\r\nbody\r\n",
      "mx.example");
  REQUIRE(cleaned);
  CHECK(*cleaned == "Authentication-Results: mx.example.org; spf=pass\r\n"
                    "Authentication-Results: (mx.example) other.example; spf=pass\r\n\r\nbody\r\n");
}
