// Pieces of the Sieve interpreter that need no message: comparators (RFC 4790 as RFC 5228
// uses them), match types with a work budget, relational operators (RFC 5231), date parts and
// zones (RFC 5260), and name checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::sieve::detail {

enum class comparator : std::uint8_t { octet, casemap, numeric };
enum class relation : std::uint8_t { gt, ge, lt, le, eq, ne };

std::optional<relation> relation_of(std::string_view op) noexcept;
comparator comparator_of(std::string_view name) noexcept;  ///< i;ascii-casemap for unknown names

/// A bound on comparisons; exhausted (for good) once more than `left` have been asked for.
struct budget {
  std::size_t left = 0;
  bool exhausted = false;
  bool spend(std::size_t n) noexcept {
    if (exhausted || n > left) {
      left = 0;
      exhausted = true;
      return false;
    }
    left -= n;
    return true;
  }
};

bool equals(comparator c, std::string_view a, std::string_view b) noexcept;
/// <0, 0, >0 as a orders before, equal to, after b under the comparator.
int order(comparator c, std::string_view a, std::string_view b) noexcept;
bool holds(relation r, int order) noexcept;
/// Substring (not for numeric). False, with the budget exhausted, when the budget runs out.
bool contains(comparator c, std::string_view hay, std::string_view needle, budget& b);
/// RFC 5228 2.7.1 wildcards: '*' any run, '?' one UTF-8 character, '\' quotes. Work is at most
/// |value| x |pattern|, charged to the budget (false, with the budget exhausted, when it runs out). On success and when
/// `captures` is given it receives ${0} (the whole value) then one string per wildcard.
bool wildcard(comparator c, std::string_view value, std::string_view pattern, budget& b,
              std::vector<std::string>* captures);

bool valid_variable_name(std::string_view name, bool allow_number) noexcept;
/// Whether the address test may read this header (RFC 5228 5.1: only fields holding addresses).
bool address_header(std::string_view name) noexcept;
bool valid_mail_address(std::string_view addr) noexcept;

/// "+hhmm" / "-hhmm" to minutes east of UTC.
std::optional<int> parse_zone(std::string_view z) noexcept;
bool date_part_known(std::string_view part) noexcept;

struct datetime {
  std::int64_t epoch = 0;  ///< seconds since 1970 UTC
  int zone = 0;            ///< minutes east of UTC as written in the source
};
/// An RFC 5322 date-time ("Fri, 12 Aug 2005 21:13:00 -0700"; obsolete zones and two-digit years
/// accepted); nullopt when it cannot be read.
std::optional<datetime> parse_date(std::string_view value) noexcept;
/// A date part (RFC 5260 section 4.1) of `epoch` shown in `zone`; empty for an unknown part.
std::string date_part(std::string_view part, std::int64_t epoch, int zone);

}  // namespace mailroom::sieve::detail
