// Cases that need an outside tool are declared with doctest::skip(!Tool::available()). When the
// tool is missing this listener says so once, and when every selected case was skipped that
// way the run exits with 77 (ctest's SKIP_RETURN_CODE) instead of passing vacuously.
// Tool provides: static bool available(); static char const* missing_message();
#pragma once

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <doctest/doctest.h>

namespace mailroom::testing {

template <class Tool>
class tool_skip_listener final : public doctest::IReporter {
 public:
  explicit tool_skip_listener(doctest::ContextOptions const&) {}
  void report_query(doctest::QueryData const&) override {}
  void test_run_start() override {}
  void test_run_end(doctest::TestRunStats const& stats) override {
    if (!skipped_ || Tool::available()) return;
    std::cerr << Tool::missing_message() << "\n";
    if (stats.numTestCasesPassingFilters == 0)
      std::atexit([] {
        std::cout.flush();
        std::cerr.flush();
        std::fflush(nullptr);
        std::_Exit(77);
      });
  }
  void test_case_start(doctest::TestCaseData const&) override {}
  void test_case_reenter(doctest::TestCaseData const&) override {}
  void test_case_end(doctest::CurrentTestCaseStats const&) override {}
  void test_case_exception(doctest::TestCaseException const&) override {}
  void subcase_start(doctest::SubcaseSignature const&) override {}
  void subcase_end() override {}
  void log_assert(doctest::AssertData const&) override {}
  void log_message(doctest::MessageData const&) override {}
  void test_case_skipped(doctest::TestCaseData const& tc) override { skipped_ = skipped_ || tc.m_skip; }

 private:
  bool skipped_ = false;
};

}  // namespace mailroom::testing
