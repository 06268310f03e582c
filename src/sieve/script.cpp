// Sieve lexer, parser and checks (RFC 5228 section 8 grammar; extension arguments per their RFCs).
#include "mailroom/sieve/script.hpp"

#include <algorithm>
#include <limits>
#include <optional>

#include "mailroom/core/error.hpp"
#include "mailroom/core/text.hpp"
#include "sieve/detail/spec.hpp"
#include "sieve/detail/util.hpp"

namespace mailroom::sieve {
namespace {

char const* describe(errc e) noexcept {
  switch (e) {
    case errc::syntax: return "sieve syntax error";
    case errc::unknown_command: return "unknown sieve command or test";
    case errc::bad_argument: return "bad sieve argument";
    case errc::not_required: return "sieve extension used without require";
    case errc::unsupported: return "unsupported sieve extension";
    case errc::limit_exceeded: return "sieve script exceeds a limit";
    case errc::runtime_limit: return "sieve run exceeds a limit";
    case errc::action_conflict: return "conflicting sieve actions";
    case errc::runtime_error: return "sieve runtime error";
  }
  return nullptr;
}

using detail::command_spec;
using detail::tag_spec;
using detail::value_kind;

struct token {
  enum kind_t { end, identifier, tag, numeral, string, multiline, lbracket, rbracket, comma, lparen, rparen,
                lbrace, rbrace, semicolon };
  kind_t kind = end;
  std::string text;  // identifier (lower-cased), tag (with colon, lower-cased), string value
  std::uint64_t number = 0;
  unsigned line = 1, column = 1;
};

class compiler {
 public:
  compiler(std::string_view src, limits const& lim) : src_(src), lim_(lim) {}

  /// The script, or nothing when error() is set.
  script run() {
    script s;
    next();
    bool requires_allowed = true;
    std::vector<node> cmds;
    while (tok_.kind != token::end && !error_) {
      node n = command(0, requires_allowed);
      if (n.name != "require") requires_allowed = false;
      else
        continue;  // require leaves nothing to run
      cmds.push_back(std::move(n));
    }
    check_chain(cmds);
    s.commands = std::move(cmds);
    s.required = required_;
    return s;
  }

 private:
  // The first failure is kept; it also ends the input, so every loop below runs out of tokens
  // and the parse unwinds (callers return right after a failure where going on would be wrong).
  void fail_at(errc e, unsigned line, unsigned column, std::string msg) {
    if (!error_) error_ = diagnostic{make_error_code(e), line, column, std::move(msg)};
    pos_ = src_.size();
    tok_.kind = token::end;
  }
  void fail_here(errc e, std::string msg) { fail_at(e, tok_.line, tok_.column, std::move(msg)); }

 public:
  std::optional<diagnostic> const& error() const noexcept { return error_; }

 private:

  // ---- lexer ----
  bool at_end() const { return pos_ >= src_.size(); }
  char peek(std::size_t ahead = 0) const { return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0'; }
  void advance() {
    if (src_[pos_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++pos_;
  }
  static bool alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
  static bool digit(char c) { return c >= '0' && c <= '9'; }

  void skip_space() {
    for (;;) {
      if (at_end()) return;
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        advance();
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') advance();
      } else if (c == '/' && peek(1) == '*') {
        unsigned l = line_, col = column_;
        advance();
        advance();
        while (!(peek() == '*' && peek(1) == '/')) {
          if (at_end()) return fail_at(errc::syntax, l, col, "unterminated comment");
          advance();
        }
        advance();
        advance();
      } else {
        return;
      }
    }
  }

  void add_char(std::string& s, char c) {
    if (error_) return;
    if (s.size() >= lim_.max_string_bytes)
      return fail_here(errc::limit_exceeded, "string longer than " + std::to_string(lim_.max_string_bytes) + " bytes");
    s.push_back(c);
  }

  // The next token; after a failure always the end.
  void next() {
    lex();
    if (error_) tok_.kind = token::end;
  }

  void lex() {
    skip_space();
    tok_ = token{};
    tok_.line = line_;
    tok_.column = column_;
    if (at_end()) return;
    char c = peek();
    auto single = [&](token::kind_t k) {
      tok_.kind = k;
      advance();
    };
    switch (c) {
      case '[': return single(token::lbracket);
      case ']': return single(token::rbracket);
      case ',': return single(token::comma);
      case '(': return single(token::lparen);
      case ')': return single(token::rparen);
      case '{': return single(token::lbrace);
      case '}': return single(token::rbrace);
      case ';': return single(token::semicolon);
      default: break;
    }
    if (c == '"') return quoted();
    if (c == ':') {
      advance();
      if (!alpha(peek())) return fail_here(errc::syntax, "expected a tag name after ':'");
      tok_.kind = token::tag;
      tok_.text = ":" + ident();
      return;
    }
    if (digit(c)) return number();
    if (alpha(c)) {
      tok_.text = ident();
      tok_.kind = token::identifier;
      if (tok_.text == "text" && peek() == ':') {
        advance();
        multiline();
      }
      return;
    }
    fail_here(errc::syntax, std::string("unexpected character ") + printable(c));
  }

  static std::string printable(char c) {
    if (static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) < 0x7f) return std::string("'") + c + "'";
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned char>(c));
    return buf;
  }

  std::string ident() {
    std::string s;
    while (!at_end() && (alpha(peek()) || digit(peek()))) {
      if (s.size() > 128) {
        fail_here(errc::limit_exceeded, "identifier too long");
        break;
      }
      s.push_back(text::to_lower(peek()));
      advance();
    }
    return s;
  }

  void number() {
    std::uint64_t v = 0;
    while (digit(peek())) {
      std::uint64_t d = static_cast<std::uint64_t>(peek() - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return fail_here(errc::syntax, "number too large");
      v = v * 10 + d;
      advance();
    }
    std::uint64_t mul = 1;
    switch (text::to_lower(peek())) {
      case 'k': mul = 1024; break;
      case 'm': mul = 1024 * 1024; break;
      case 'g': mul = 1024 * 1024 * 1024; break;
      default: break;
    }
    if (mul != 1) advance();
    if (v > std::numeric_limits<std::uint64_t>::max() / mul) return fail_here(errc::syntax, "number too large");
    if (alpha(peek())) return fail_here(errc::syntax, "bad number");
    tok_.kind = token::numeral;
    tok_.number = v * mul;
  }

  void quoted() {
    advance();
    tok_.kind = token::string;
    for (;;) {
      if (at_end()) return fail_at(errc::syntax, tok_.line, tok_.column, "unterminated string");
      char c = peek();
      advance();
      if (c == '"') break;
      if (c == '\\') {
        if (at_end()) continue;
        c = peek();
        advance();
      }
      add_char(tok_.text, c);
    }
    tok_.text = decode(tok_.text);
  }

  // "text:" [spaces] [comment] newline, lines, "." newline; a leading ".." loses one dot.
  void multiline() {
    while (peek() == ' ' || peek() == '\t') advance();
    if (peek() == '#') {
      while (!at_end() && peek() != '\n') advance();
    }
    if (peek() == '\r') advance();
    if (peek() != '\n') return fail_here(errc::syntax, "expected a line end after \"text:\"");
    advance();
    tok_.kind = token::multiline;
    tok_.text.clear();
    for (;;) {
      if (at_end()) return fail_at(errc::syntax, tok_.line, tok_.column, "unterminated multi-line string");
      std::size_t eol = src_.find('\n', pos_);
      std::string_view line = src_.substr(pos_, eol == std::string_view::npos ? std::string_view::npos : eol - pos_);
      std::string_view content = line;
      if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
      if (content == ".") {
        while (pos_ < src_.size() && src_[pos_] != '\n') advance();
        if (!at_end()) advance();
        break;
      }
      if (!content.empty() && content.front() == '.') content.remove_prefix(1);
      for (char c : content) add_char(tok_.text, c);
      if (eol == std::string_view::npos || error_)
        return fail_at(errc::syntax, tok_.line, tok_.column, "unterminated multi-line string");
      add_char(tok_.text, '\r');
      add_char(tok_.text, '\n');
      while (pos_ <= eol) advance();
    }
    tok_.text = decode(tok_.text);
  }

  // RFC 5228 2.4.2.4 encoded-character: "${hex:41 42}", "${unicode:1F600}".
  std::string decode(std::string const& s) {
    if (!(required_ & detail::bit(extension::encoded_character)) || s.find("${") == std::string::npos) return s;
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
      if (s.compare(i, 2, "${") == 0) {
        std::size_t close = s.find('}', i);
        std::string_view body = close == std::string::npos ? std::string_view{} : std::string_view(s).substr(i + 2, close - i - 2);
        bool hex = text::istarts_with(body, "hex:"), uni = text::istarts_with(body, "unicode:");
        if (hex || uni) {
          std::string decoded;
          if (encoded_values(body.substr(hex ? 4 : 8), uni, decoded)) {
            out += decoded;
            i = close + 1;
            continue;
          }
        }
      }
      out.push_back(s[i++]);
    }
    return out;
  }

  bool encoded_values(std::string_view in, bool unicode, std::string& out) {
    bool any = false;
    std::size_t i = 0;
    for (;;) {
      while (i < in.size() && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n')) ++i;
      if (i == in.size()) return any;
      std::size_t start = i;
      std::uint32_t v = 0;
      while (i < in.size() && std::isxdigit(static_cast<unsigned char>(in[i]))) {
        if (i - start >= 8) return false;
        v = v * 16 + static_cast<std::uint32_t>(std::isdigit(static_cast<unsigned char>(in[i])) ? in[i] - '0'
                                                                                            : (text::to_lower(in[i]) - 'a' + 10));
        ++i;
      }
      if (i == start) return false;
      if (unicode) {
        if ((v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) {
          fail_here(errc::bad_argument, "invalid unicode character in encoded-character");
          return false;
        }
        text::append_utf8(out, static_cast<char32_t>(v));
      } else {
        if (i - start != 2) return false;
        out.push_back(static_cast<char>(v));
      }
      any = true;
    }
  }

  // ---- parser ----
  void expect(token::kind_t k, char const* what) {
    if (tok_.kind != k) return fail_here(errc::syntax, std::string("expected ") + what + " but found " + found());
    next();
  }
  std::string found() const {
    switch (tok_.kind) {
      case token::end: return "end of script";
      case token::identifier: return "\"" + tok_.text + "\"";
      case token::tag: return "tag " + tok_.text;
      case token::numeral: return "a number";
      case token::string:
      case token::multiline: return "a string";
      case token::lbracket: return "'['";
      case token::rbracket: return "']'";
      case token::comma: return "','";
      case token::lparen: return "'('";
      case token::rparen: return "')'";
      case token::lbrace: return "'{'";
      case token::rbrace: return "'}'";
      case token::semicolon: return "';'";
    }
    return "?";
  }

  void count_node() {
    if (++nodes_ > lim_.max_commands)
      fail_here(errc::limit_exceeded, "more than " + std::to_string(lim_.max_commands) + " commands and tests");
  }
  void check_depth(std::size_t depth) {
    if (depth > lim_.max_depth)
      fail_here(errc::limit_exceeded, "nesting deeper than " + std::to_string(lim_.max_depth));
  }

  // Arguments up to a test, test list, block or ';'.
  std::vector<argument> arguments() {
    std::vector<argument> args;
    for (;;) {
      argument a;
      a.line = tok_.line;
      a.column = tok_.column;
      if (tok_.kind == token::tag) {
        a.type = argument::kind::tag;
        a.tag = tok_.text;
        next();
      } else if (tok_.kind == token::numeral) {
        a.type = argument::kind::number;
        a.number = tok_.number;
        next();
      } else if (tok_.kind == token::string || tok_.kind == token::multiline) {
        a.type = argument::kind::string;
        a.strings.push_back(std::move(tok_.text));
        next();
      } else if (tok_.kind == token::lbracket) {
        a.type = argument::kind::string_list;
        next();
        for (;;) {
          if (tok_.kind != token::string && tok_.kind != token::multiline) {
            fail_here(errc::syntax, "expected a string in the list but found " + found());
            return args;
          }
          if (a.strings.size() >= lim_.max_list_items) {
            fail_here(errc::limit_exceeded, "string list longer than " + std::to_string(lim_.max_list_items) + " items");
            return args;
          }
          a.strings.push_back(std::move(tok_.text));
          next();
          if (tok_.kind == token::comma) {
            next();
            continue;
          }
          expect(token::rbracket, "',' or ']'");
          break;
        }
      } else {
        return args;
      }
      if (args.size() >= 64) {
        fail_at(errc::limit_exceeded, a.line, a.column, "too many arguments");
        return args;
      }
      args.push_back(std::move(a));
    }
  }

  // The start of a command or test: depth and count checks, the name, and its spec (nullptr
  // after a failure).
  command_spec const* start(std::size_t depth, bool is_test, node& n) {
    char const* what = is_test ? "test" : "command";
    check_depth(depth);
    count_node();
    if (error_) return nullptr;
    if (tok_.kind != token::identifier) {
      fail_here(errc::syntax, std::string("expected a ") + what + " but found " + found());
      return nullptr;
    }
    n.name = tok_.text;
    n.line = tok_.line;
    n.column = tok_.column;
    command_spec const* spec = detail::find_spec(n.name, is_test);
    if (!spec) {
      if (detail::find_spec(n.name, !is_test))
        fail_here(errc::unknown_command, "\"" + n.name + "\" is a " + (is_test ? "command" : "test") + ", not a " + what);
      else
        fail_here(errc::unknown_command, std::string("unknown ") + what + " \"" + n.name + "\"");
      return nullptr;
    }
    next();
    return spec;
  }

  node test(std::size_t depth) {
    node n;
    command_spec const* spec = start(depth, true, n);
    if (!spec) return n;
    auto args = arguments();
    if (tok_.kind == token::lparen) {
      next();
      while (!error_) {
        n.tests.push_back(test(depth + 1));
        if (tok_.kind == token::comma) {
          next();
          continue;
        }
        expect(token::rparen, "',' or ')'");
        break;
      }
      if (spec->tests != 2) fail_at(errc::bad_argument, n.line, n.column, "test \"" + n.name + "\" takes no test list");
    } else if (tok_.kind == token::identifier) {
      n.tests.push_back(test(depth + 1));
      if (spec->tests != 1) fail_at(errc::bad_argument, n.line, n.column, "test \"" + n.name + "\" takes no test");
    } else if (spec->tests != 0) {
      fail_here(errc::bad_argument, "test \"" + n.name + "\" needs " + (spec->tests == 1 ? "a test" : "a test list"));
    }
    check(n, *spec, std::move(args));
    return n;
  }

  node command(std::size_t depth, bool requires_allowed) {
    node n;
    command_spec const* spec = start(depth, false, n);
    if (!spec) return n;
    auto args = arguments();
    if (spec->tests == 1) {
      if (tok_.kind != token::identifier) {
        fail_here(errc::syntax, "\"" + n.name + "\" needs a test but found " + found());
        return n;
      }
      n.tests.push_back(test(depth + 1));
    }
    if (spec->block) {
      if (tok_.kind != token::lbrace) {
        fail_here(errc::syntax, "expected '{' but found " + found());
        return n;
      }
      next();
      std::vector<node> body;
      while (tok_.kind != token::rbrace) {
        if (tok_.kind == token::end || error_) {
          fail_here(errc::syntax, "expected '}' to close the block of \"" + n.name + "\" from line " +
                                      std::to_string(n.line) + " but found end of script");
          return n;
        }
        body.push_back(command(depth + 1, false));
      }
      next();
      check_chain(body);
      n.block = std::move(body);
    } else {
      if (tok_.kind != token::semicolon) {  // reported where the command is, not where the next one starts
        fail_at(errc::syntax, n.line, n.column, "missing ';' after \"" + n.name + "\" (found " + found() + ")");
        return n;
      }
      next();
    }
    if (n.name == "require") {
      if (!requires_allowed) fail_at(errc::syntax, n.line, n.column, "\"require\" must come before other commands");
      if (args.size() != 1 || args[0].type == argument::kind::tag || args[0].type == argument::kind::number) {
        fail_at(errc::bad_argument, n.line, n.column, "\"require\" takes one string list");
        return n;
      }
      for (auto const& name : args[0].strings) {
        std::uint32_t b = detail::extension_bit(name);
        if (b == 0) fail_at(errc::unsupported, args[0].line, args[0].column, "unsupported extension \"" + name + "\"");
        required_ |= b;
      }
      return n;
    }
    check(n, *spec, std::move(args));
    return n;
  }

  // elsif/else must follow if/elsif.
  void check_chain(std::vector<node> const& cmds) {
    std::string_view prev;
    for (auto const& c : cmds) {
      if ((c.name == "elsif" || c.name == "else") && prev != "if" && prev != "elsif")
        fail_at(errc::syntax, c.line, c.column, "\"" + c.name + "\" without \"if\"");
      prev = c.name;
    }
  }

  bool needs(std::uint32_t ext) const { return ext == 0 || (required_ & ext) == ext; }

  void check(node& n, command_spec const& spec, std::vector<argument> args) {
    if (error_) return;
    char const* what = spec.is_test ? "test" : "command";
    if (!needs(spec.ext))
      return fail_at(errc::not_required, n.line, n.column,
              std::string(what) + " \"" + n.name + "\" needs require \"" + extension_name(spec.ext) + "\"");
    std::size_t i = 0;
    std::vector<detail::tag_group> groups;
    for (; i < args.size() && args[i].type == argument::kind::tag; ++i) {
      argument& a = args[i];
      auto it = std::find_if(spec.tags.begin(), spec.tags.end(), [&](tag_spec const& t) { return t.name == a.tag; });
      if (it == spec.tags.end())
        return fail_at(errc::bad_argument, a.line, a.column, "unknown tag " + a.tag + " for " + what + " \"" + n.name + "\"");
      if (!needs(it->ext))
        return fail_at(errc::not_required, a.line, a.column, "tag " + a.tag + " needs require \"" + extension_name(it->ext) + "\"");
      if (n.has(a.tag)) return fail_at(errc::bad_argument, a.line, a.column, "tag " + a.tag + " given twice");
      if (it->group != detail::tag_group::none) {
        if (std::find(groups.begin(), groups.end(), it->group) != groups.end())
          return fail_at(errc::bad_argument, a.line, a.column, "tag " + a.tag + " conflicts with an earlier tag");
        groups.push_back(it->group);
      }
      argument value = a;
      if (it->value != value_kind::none) {
        if (i + 1 >= args.size()) return fail_at(errc::bad_argument, a.line, a.column, "tag " + a.tag + " needs a value");
        argument& v = args[++i];
        bool ok = (it->value == value_kind::number && v.type == argument::kind::number) ||
                  (it->value == value_kind::string && v.type == argument::kind::string) ||
                  (it->value == value_kind::strings &&
                   (v.type == argument::kind::string || v.type == argument::kind::string_list));
        if (!ok)
          return fail_at(errc::bad_argument, v.line, v.column,
                  "tag " + a.tag + " needs " +
                      (it->value == value_kind::number ? "a number" : it->value == value_kind::string ? "a string" : "a string list"));
        value = std::move(v);
      }
      n.tagged.emplace_back(a.tag, std::move(value));
    }
    std::string shape;
    for (std::size_t j = i; j < args.size(); ++j) {
      if (args[j].type == argument::kind::tag)
        return fail_at(errc::bad_argument, args[j].line, args[j].column, "tag " + args[j].tag + " must come before the other arguments");
      shape += args[j].type == argument::kind::number ? 'N' : args[j].type == argument::kind::string ? 'S' : 'L';
    }
    bool matched = false;
    for (auto want : spec.positional) {
      if (want.size() != shape.size()) continue;
      bool ok = true;
      for (std::size_t k = 0; k < want.size(); ++k)
        ok = ok && (want[k] == shape[k] || (want[k] == 'L' && shape[k] == 'S'));
      if (ok) matched = true;
    }
    if (!matched)
      return fail_at(errc::bad_argument, n.line, n.column, std::string("wrong arguments for ") + what + " \"" + n.name + "\"");
    for (std::size_t j = i; j < args.size(); ++j) n.positional.push_back(std::move(args[j]));
    check_semantics(n);
  }

  static std::string extension_name(std::uint32_t ext) {
    static constexpr std::pair<extension, char const*> names[] = {
        {extension::fileinto, "fileinto"}, {extension::reject, "reject"}, {extension::ereject, "ereject"},
        {extension::envelope, "envelope"}, {extension::body, "body"}, {extension::variables, "variables"},
        {extension::relational, "relational"}, {extension::subaddress, "subaddress"}, {extension::copy, "copy"},
        {extension::imap4flags, "imap4flags"}, {extension::date, "date"}, {extension::index, "index"},
        {extension::mailbox, "mailbox"}, {extension::vacation, "vacation"},
        {extension::vacation_seconds, "vacation-seconds"}, {extension::encoded_character, "encoded-character"},
        {extension::comparator_numeric, "comparator-i;ascii-numeric"}};
    for (auto const& [e, name] : names)
      if (ext & detail::bit(e)) return name;
    return "?";
  }

  bool constant(std::string const& s) const {
    return !(required_ & detail::bit(extension::variables)) || s.find("${") == std::string::npos;
  }

  void check_semantics(node& n) {
    if (error_) return;
    if (argument const* c = n.tag(":comparator")) {
      std::string const& name = c->strings.front();
      if (name == "i;ascii-numeric") {
        if (!needs(detail::bit(extension::comparator_numeric)))
          fail_at(errc::not_required, c->line, c->column, "comparator \"i;ascii-numeric\" needs require \"comparator-i;ascii-numeric\"");
        if (n.has(":contains") || n.has(":matches"))
          fail_at(errc::bad_argument, c->line, c->column, "comparator \"i;ascii-numeric\" cannot do substring matches");
      } else if (name != "i;octet" && name != "i;ascii-casemap") {
        fail_at(errc::bad_argument, c->line, c->column, "unknown comparator \"" + name + "\"");
      }
    }
    for (char const* rel : {":value", ":count"}) {
      if (argument* r = const_cast<argument*>(n.tag(rel))) {
        std::string op = text::to_lower(r->strings.front());
        if (!detail::relation_of(op))
          fail_at(errc::bad_argument, r->line, r->column, "unknown relational operator \"" + r->strings.front() + "\"");
        r->strings.front() = op;
      }
    }
    if (n.has(":last") && !n.has(":index")) fail_at(errc::bad_argument, n.line, n.column, ":last needs :index");
    if (argument const* ix = n.tag(":index"); ix && ix->number == 0)
      fail_at(errc::bad_argument, ix->line, ix->column, ":index must be at least 1");
    if (n.name == "size" && !n.has(":over") && !n.has(":under"))
      fail_at(errc::bad_argument, n.line, n.column, "\"size\" needs :over or :under");
    if (n.name == "address") {
      for (auto const& h : n.positional[0].strings)
        if (constant(h) && !detail::address_header(h))
          return fail_at(errc::bad_argument, n.positional[0].line, n.positional[0].column,
                         "header \"" + h + "\" holds no addresses (address test)");
    }
    if (n.name == "envelope") {
      for (auto const& part : n.positional[0].strings) {
        std::string p = text::to_lower(part);
        if (constant(part) && p != "from" && p != "to")
          fail_at(errc::bad_argument, n.positional[0].line, n.positional[0].column, "unknown envelope part \"" + part + "\"");
      }
    }
    if (n.name == "date" || n.name == "currentdate") {
      argument const& part = n.positional[n.name == "date" ? 1 : 0];
      if (constant(part.strings.front()) && !detail::date_part_known(text::to_lower(part.strings.front())))
        fail_at(errc::bad_argument, part.line, part.column, "unknown date part \"" + part.strings.front() + "\"");
      if (argument const* z = n.tag(":zone"); z && constant(z->strings.front()) && !detail::parse_zone(z->strings.front()))
        fail_at(errc::bad_argument, z->line, z->column, "bad time zone \"" + z->strings.front() + "\"");
    }
    if (n.name == "set" && !detail::valid_variable_name(n.positional[0].strings.front(), false))
      fail_at(errc::bad_argument, n.positional[0].line, n.positional[0].column,
              "bad variable name \"" + n.positional[0].strings.front() + "\"");
    if ((n.name == "setflag" || n.name == "addflag" || n.name == "removeflag" || n.name == "hasflag") &&
        n.positional.size() == 2) {
      if (!needs(detail::bit(extension::variables)))
        fail_at(errc::not_required, n.line, n.column, "a flag variable needs require \"variables\"");
      for (auto const& v : n.positional[0].strings)
        if (!detail::valid_variable_name(v, false))
          fail_at(errc::bad_argument, n.positional[0].line, n.positional[0].column, "bad variable name \"" + v + "\"");
    }
    if (n.name == "redirect" && constant(n.positional[0].strings.front()) &&
        !detail::valid_mail_address(n.positional[0].strings.front()))
      fail_at(errc::bad_argument, n.positional[0].line, n.positional[0].column,
              "bad redirect address \"" + n.positional[0].strings.front() + "\"");
    if (n.name == "vacation" && n.has(":days") && n.has(":seconds"))
      fail_at(errc::bad_argument, n.line, n.column, "vacation takes :days or :seconds, not both");
  }

  std::string_view src_;
  limits const& lim_;
  std::size_t pos_ = 0;
  unsigned line_ = 1, column_ = 1;
  token tok_;
  std::size_t nodes_ = 0;
  std::uint32_t required_ = detail::always;
  std::optional<diagnostic> error_;
};

}  // namespace

std::error_category const& category() noexcept {
  static mailroom::detail::enum_category<errc> const instance("mailroom.sieve", describe, "unknown sieve error");
  return instance;
}

std::string diagnostic::text() const {
  if (line == 0) return message;
  return "line " + std::to_string(line) + ": " + message;
}

argument const* node::tag(std::string_view name) const noexcept {
  for (auto const& [t, v] : tagged)
    if (t == name) return &v;
  return nullptr;
}

expected<std::shared_ptr<script const>, diagnostic> compile(std::string_view text, limits const& lim) {
  if (text.size() > lim.max_script_bytes)
    return unexpected(diagnostic{make_error_code(errc::limit_exceeded), 0, 0,
                                 "script larger than " + std::to_string(lim.max_script_bytes) + " bytes"});
  compiler c(text, lim);
  script s = c.run();
  if (c.error()) return unexpected(*c.error());
  return std::make_shared<script const>(std::move(s));
}

}  // namespace mailroom::sieve
