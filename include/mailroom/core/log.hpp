// Structured logging through a replaceable sink.
//
// Contract: components log through a `logger` value that carries the component name and, once
// known, a session or queue id. Protocol lines, message bodies and anything secret (AUTH payloads,
// passwords) are only ever logged at level::trace, which no default configuration enables.
#pragma once

#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace mailroom::log {

enum class level { trace, debug, info, notice, warning, error, critical, off };

std::string_view to_string(level) noexcept;
/// Parses "trace", "debug", ... ; returns level::info for unknown names.
level parse_level(std::string_view) noexcept;

struct field {
  std::string_view key;
  std::string value;
};

struct record {
  level lvl;
  std::string_view component;  ///< "smtp", "tls", "dns", ...
  std::string_view id;         ///< session or queue id, may be empty
  std::string_view message;
  std::span<field const> fields;
};

/// Where log records go. Implementations must be safe to call from several threads.
class sink {
 public:
  virtual ~sink() = default;
  virtual void write(record const&) noexcept = 0;
};

/// Writes one line per record to stderr: `time level component[id]: message key=value ...`.
class stderr_sink final : public sink {
 public:
  void write(record const&) noexcept override;
};

/// Discards everything.
class null_sink final : public sink {
 public:
  void write(record const&) noexcept override {}
};

/// A sink plus a threshold and a context (component, id). Cheap to copy.
class logger {
 public:
  logger();  ///< stderr at level::info, component "mailroom"
  logger(std::shared_ptr<sink> s, level threshold, std::string component = "mailroom");

  /// The same sink and threshold, another component or id.
  logger with_component(std::string component) const;
  logger with_id(std::string id) const;

  bool enabled(level l) const noexcept { return l >= threshold_ && l != level::off; }
  level threshold() const noexcept { return threshold_; }
  std::string_view id() const noexcept { return id_; }

  void log(level l, std::string_view message, std::initializer_list<field> fields = {}) const noexcept;
  void trace(std::string_view m, std::initializer_list<field> f = {}) const noexcept { log(level::trace, m, f); }
  void debug(std::string_view m, std::initializer_list<field> f = {}) const noexcept { log(level::debug, m, f); }
  void info(std::string_view m, std::initializer_list<field> f = {}) const noexcept { log(level::info, m, f); }
  void notice(std::string_view m, std::initializer_list<field> f = {}) const noexcept { log(level::notice, m, f); }
  void warning(std::string_view m, std::initializer_list<field> f = {}) const noexcept { log(level::warning, m, f); }
  void error(std::string_view m, std::initializer_list<field> f = {}) const noexcept { log(level::error, m, f); }

 private:
  std::shared_ptr<sink> sink_;
  level threshold_;
  std::string component_;
  std::string id_;
};

}  // namespace mailroom::log
