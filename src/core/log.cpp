#include "mailroom/core/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace mailroom::log {

std::string_view to_string(level l) noexcept {
  switch (l) {
    case level::trace: return "trace";
    case level::debug: return "debug";
    case level::info: return "info";
    case level::notice: return "notice";
    case level::warning: return "warning";
    case level::error: return "error";
    case level::critical: return "critical";
    case level::off: return "off";
  }
  return "info";
}

level parse_level(std::string_view s) noexcept {
  for (auto l : {level::trace, level::debug, level::info, level::notice, level::warning, level::error,
                 level::critical, level::off})
    if (s == to_string(l)) return l;
  return level::info;
}

namespace {
// Values with spaces, quotes or control characters are quoted and escaped so a line stays one line.
void append_value(std::string& out, std::string_view v) {
  bool plain = !v.empty();
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == 0x7f) plain = false;
  if (plain) {
    out += v;
    return;
  }
  out += '"';
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < ' ' || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}
}  // namespace

void stderr_sink::write(record const& r) noexcept {
  try {
    auto now = std::chrono::system_clock::now();
    auto t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[96];
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    std::string line;
    line.reserve(128);
    line += stamp;
    line += ' ';
    line += to_string(r.lvl);
    line += ' ';
    line += r.component;
    if (!r.id.empty()) {
      line += '[';
      line += r.id;
      line += ']';
    }
    line += ": ";
    line += r.message;
    for (auto const& f : r.fields) {
      line += ' ';
      line += f.key;
      line += '=';
      append_value(line, f.value);
    }
    line += '\n';
    static std::mutex m;
    std::lock_guard lock(m);
    std::fwrite(line.data(), 1, line.size(), stderr);
  } catch (...) {
  }
}

logger::logger() : logger(std::make_shared<stderr_sink>(), level::info) {}

logger::logger(std::shared_ptr<sink> s, level threshold, std::string component)
    : sink_(std::move(s)), threshold_(threshold), component_(std::move(component)) {}

logger logger::with_component(std::string component) const {
  logger l = *this;
  l.component_ = std::move(component);
  return l;
}

logger logger::with_id(std::string id) const {
  logger l = *this;
  l.id_ = std::move(id);
  return l;
}

void logger::log(level l, std::string_view message, std::initializer_list<field> fields) const noexcept {
  if (!enabled(l) || !sink_) return;
  sink_->write(record{l, component_, id_, message, std::span<field const>(fields.begin(), fields.size())});
}

}  // namespace mailroom::log
