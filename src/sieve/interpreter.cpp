// The Sieve interpreter: see interpreter.hpp.
#include "mailroom/sieve/interpreter.hpp"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <utility>

#include "mailroom/core/text.hpp"
#include "mailroom/mime/address.hpp"
#include "mailroom/mime/encoded_word.hpp"
#include "mailroom/mime/message.hpp"
#include "mailroom/mime/transfer_encoding.hpp"
#include "mailroom/sieve/vacation_store.hpp"
#include "sieve/detail/util.hpp"

namespace mailroom::sieve {
namespace {

using detail::comparator;

std::vector<std::string> split_flags(std::vector<std::string> const& in) {
  std::vector<std::string> out;
  for (auto const& s : in) {
    std::size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && s[i] == ' ') ++i;
      std::size_t st = i;
      while (i < s.size() && s[i] != ' ') ++i;
      if (i > st) {
        std::string f = s.substr(st, i - st);
        bool dup = std::any_of(out.begin(), out.end(), [&](std::string const& o) { return text::iequals(o, f); });
        if (!dup) out.push_back(std::move(f));
      }
    }
  }
  return out;
}

std::string join_flags(std::vector<std::string> const& f) {
  std::string out;
  for (auto const& s : f) {
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

std::string lower(std::string_view s) { return text::to_lower(s); }

// A quoted local part ("john doe"@x) as the text it stands for: john doe.
std::string unquote(std::string const& local) {
  if (local.size() < 2 || local.front() != '"' || local.back() != '"') return local;
  std::string out;
  for (std::size_t i = 1; i + 1 < local.size(); ++i) {
    if (local[i] == '\\' && i + 2 < local.size()) ++i;
    out.push_back(local[i]);
  }
  return out;
}

// Local parts are case-sensitive (RFC 5321 2.4), domains are not.
bool same_address(std::string_view a, std::string_view b) {
  auto at_a = a.rfind('@'), at_b = b.rfind('@');
  return at_a == at_b && a.substr(0, at_a) == b.substr(0, at_b) && text::iequals(a.substr(at_a), b.substr(at_b));
}

class runner {
 public:
  runner(script const& s, environment const& env, limits const& lim) : s_(s), env_(env), lim_(lim) {
    work_.left = lim.max_match_work;
    vars_on_ = s.uses(extension::variables);
  }

  run_result go() {
    run_result r;
    block(s_.commands);
    if (!error_) finish();
    if (error_) {
      r.error = std::move(error_);
      r.actions = {keep_action{{}, true}};
      return r;
    }
    r.actions = std::move(actions_);
    if (vacation_key_ && env_.vacation) env_.vacation->record(*vacation_key_, env_.now);
    return r;
  }

 private:
  // The first failure ends the run: commands stop executing and run() falls back to keep.
  void fail(errc e, std::string msg) {
    if (!error_) error_ = diagnostic{make_error_code(e), line_, 0, std::move(msg)};
  }
  // After a matching step: turns an exhausted budget into the run's failure.
  bool out_of_work() {
    if (!work_.exhausted) return false;
    fail(errc::runtime_limit, "too much matching work");
    return true;
  }

  // ---- message access ----
  mime::part const& tree() {
    if (!tree_) {
      auto p = mime::parse(env_.message);
      if (p) {
        tree_ = std::move(*p);
      } else {
        tree_.emplace();
        auto body = mime::parse_header(env_.message, 0, tree_->fields);
        tree_->body_begin = body ? *body : env_.message.size();
        tree_->end = env_.message.size();
      }
    }
    return *tree_;
  }
  std::vector<std::string_view> raw_fields(std::string_view name) {
    std::vector<std::string_view> out;
    for (auto const& f : tree().fields)
      if (text::iequals(f.name, name)) out.push_back(f.value);
    return out;
  }
  std::vector<std::string_view> indexed(node const& n, std::vector<std::string_view> v) {
    argument const* ix = n.tag(":index");
    if (!ix) return v;
    if (ix->number > v.size()) return {};
    std::size_t i = n.has(":last") ? v.size() - ix->number : ix->number - 1;
    return {v[i]};
  }

  // ---- variables ----
  std::string expand(std::string const& in) {
    if (!vars_on_ || in.find("${") == std::string::npos) return in;
    std::string out;
    std::size_t i = 0;
    std::size_t close = 0;  // the first '}' at or after the last search start: found once, reused
    while (i < in.size()) {
      if (in.compare(i, 2, "${") == 0) {
        if (close != std::string::npos && close < i + 2) close = in.find('}', i + 2);
        if (close == std::string::npos) {  // no '}' is left: the rest is literal (linear, not quadratic)
          out.append(in, i, std::string::npos);
          break;
        }
        {
          std::string_view name = std::string_view(in).substr(i + 2, close - i - 2);
          if (detail::valid_variable_name(name, true)) {
            out += variable(name);
            i = close + 1;
            if (out.size() > lim_.max_string_bytes) break;
            continue;
          }
        }
      }
      out.push_back(in[i++]);
    }
    if (out.size() > lim_.max_string_bytes) out.resize(lim_.max_string_bytes);
    return out;
  }
  std::vector<std::string> expand(std::vector<std::string> const& in) {
    std::vector<std::string> out;
    out.reserve(in.size());
    std::size_t total = 0;
    for (auto const& s : in) {
      out.push_back(expand(s));
      total += out.back().size();
      if (total > lim_.max_string_bytes * 16) {
        fail(errc::runtime_limit, "string list longer than " + std::to_string(lim_.max_string_bytes * 16) +
                                      " bytes after variable expansion");
        out.clear();
        break;
      }
    }
    return out;
  }
  std::string variable(std::string_view name) {
    if (name.front() >= '0' && name.front() <= '9') {
      auto n = text::parse_uint(name, 1000);
      return n && *n < match_.size() ? match_[*n] : std::string();
    }
    auto it = vars_.find(lower(name));
    return it == vars_.end() ? std::string() : it->second;
  }
  void set_variable(std::string const& name, std::string value) {
    std::string key = lower(name);
    if (!vars_.count(key) && vars_.size() >= lim_.max_variables)
      return fail(errc::runtime_limit, "more than " + std::to_string(lim_.max_variables) + " variables");
    if (value.size() > lim_.max_variable_bytes) {
      std::size_t n = lim_.max_variable_bytes;
      while (n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;  // keep UTF-8 whole
      value.resize(n);
    }
    vars_[key] = std::move(value);
  }
  std::string const& str(argument const& a) { return a.strings.front(); }

  // ---- matching ----
  bool match(node const& n, std::vector<std::string> const& values, std::vector<std::string> const& keys,
             std::size_t count_override = SIZE_MAX) {
    argument const* cmp = n.tag(":comparator");
    comparator c = cmp ? detail::comparator_of(str(*cmp)) : comparator::casemap;
    if (argument const* cnt = n.tag(":count")) {
      auto rel = *detail::relation_of(str(*cnt));
      std::string count = std::to_string(count_override == SIZE_MAX ? values.size() : count_override);
      for (auto const& k : keys)
        if (detail::holds(rel, detail::order(c, count, k))) return true;
      return false;
    }
    argument const* val = n.tag(":value");
    bool contains = n.has(":contains"), matches = n.has(":matches");
    for (auto const& v : values) {
      for (auto const& k : keys) {
        if (!work_.spend(1)) {
          out_of_work();
          return false;
        }
        if (val) {
          if (detail::holds(*detail::relation_of(str(*val)), detail::order(c, v, k))) return true;
        } else if (contains) {
          if (detail::contains(c, v, k, work_)) return true;
          if (out_of_work()) return false;
        } else if (matches) {
          std::vector<std::string> caps;
          bool const hit = detail::wildcard(c, v, k, work_, vars_on_ ? &caps : nullptr);
          if (out_of_work()) return false;
          if (hit) {
            if (vars_on_) {
              if (caps.size() > 10) caps.resize(10);
              match_ = std::move(caps);
            }
            return true;
          }
        } else if (detail::equals(c, v, k)) {
          return true;
        }
      }
    }
    return false;
  }

  std::optional<std::string> address_part(node const& n, std::string const& local, std::string const& domain) {
    if (n.has(":localpart")) return local;
    if (n.has(":domain")) return domain;
    if (n.has(":user") || n.has(":detail")) {
      auto plus = local.find('+');
      if (n.has(":user")) return plus == std::string::npos ? local : local.substr(0, plus);
      if (plus == std::string::npos) return std::nullopt;
      return local.substr(plus + 1);
    }
    return domain.empty() ? local : local + "@" + domain;
  }

  // ---- tests ----
  bool test(node const& n) {
    if (error_) return false;
    line_ = n.line;
    std::string const& t = n.name;
    if (t == "true") return true;
    if (t == "false") return false;
    if (t == "not") return !test(n.tests[0]);
    if (t == "allof") {
      for (auto const& x : n.tests)
        if (!test(x)) return false;
      return true;
    }
    if (t == "anyof") {
      for (auto const& x : n.tests)
        if (test(x)) return true;
      return false;
    }
    if (t == "exists") {
      for (auto const& h : expand(n.positional[0].strings))
        if (raw_fields(h).empty()) return false;
      return true;
    }
    if (t == "size") {
      std::uint64_t limit = n.positional[0].number, size = env_.message.size();
      return n.has(":over") ? size > limit : size < limit;
    }
    if (t == "header") {
      std::vector<std::string> values;
      for (auto const& h : expand(n.positional[0].strings))
        for (auto raw : indexed(n, raw_fields(h))) values.push_back(mime::decode_header_value(raw));
      return match(n, values, expand(n.positional[1].strings));
    }
    if (t == "address") {
      std::vector<std::string> values;
      for (auto const& h : expand(n.positional[0].strings)) {
        if (!detail::address_header(h)) continue;  // a name from variables: as if absent
        for (auto raw : indexed(n, raw_fields(h)))
          for (auto const& a : mime::parse_address_list(mime::unfold(raw))) {
            if (a.group || a.group_end) continue;
            if (auto v = address_part(n, unquote(a.mailbox), a.host)) values.push_back(std::move(*v));
          }
      }
      return match(n, values, expand(n.positional[1].strings));
    }
    if (t == "envelope") {
      std::vector<std::string> values;
      for (auto const& part : expand(n.positional[0].strings)) {
        std::string p = lower(part), addr;
        if (p == "from") addr = env_.envelope_from;
        else if (p == "to") addr = env_.envelope_to;
        else continue;
        if (addr.empty()) {
          values.emplace_back();
          continue;
        }
        auto at = addr.rfind('@');
        std::string local = at == std::string::npos ? addr : addr.substr(0, at);
        std::string domain = at == std::string::npos ? std::string() : addr.substr(at + 1);
        if (auto v = address_part(n, local, domain)) values.push_back(std::move(*v));
      }
      return match(n, values, expand(n.positional[1].strings));
    }
    if (t == "body") return body_test(n);
    if (t == "string") {
      auto values = expand(n.positional[0].strings);
      std::size_t nonempty = static_cast<std::size_t>(std::count_if(values.begin(), values.end(), [](auto const& v) { return !v.empty(); }));
      return match(n, values, expand(n.positional[1].strings), nonempty);
    }
    if (t == "hasflag") {
      std::vector<std::string> names;
      if (n.positional.size() == 2) names = n.positional[0].strings;
      std::vector<std::string> have;
      if (names.empty()) have = split_flags({flags_});
      else
        for (auto const& v : names) {
          auto f = split_flags({variable(v)});
          have.insert(have.end(), f.begin(), f.end());
        }
      auto keys = expand(n.positional.back().strings);
      if (!n.has(":count") && !n.has(":matches") && !n.has(":contains") && !n.has(":value")) keys = split_flags(keys);
      return match(n, have, keys);
    }
    if (t == "date" || t == "currentdate") return date_test(n);
    if (t == "mailboxexists") {
      for (auto const& m : expand(n.positional[0].strings)) {
        bool exists = env_.mailbox_exists ? env_.mailbox_exists(m) : text::iequals(m, "INBOX");
        if (!exists) return false;
      }
      return true;
    }
    fail(errc::runtime_error, "test \"" + t + "\" is not implemented");
    return false;
  }

  bool date_test(node const& n) {
    bool current = n.name == "currentdate";
    std::int64_t epoch = env_.now;
    int zone = env_.local_zone;
    if (!current) {
      std::string name = expand(str(n.positional[0]));
      auto fields = indexed(n, raw_fields(name));
      if (fields.empty()) return false;
      std::string value = mime::decode_header_value(fields.front());
      if (text::iequals(name, "received")) {
        auto semi = value.rfind(';');
        if (semi != std::string::npos) value = value.substr(semi + 1);
      }
      auto dt = detail::parse_date(value);
      if (!dt) return false;
      epoch = dt->epoch;
      if (n.has(":originalzone")) zone = dt->zone;
    }
    if (argument const* z = n.tag(":zone")) {
      auto parsed = detail::parse_zone(expand(str(*z)));
      if (!parsed) return false;
      zone = *parsed;
    }
    std::string part = lower(expand(str(n.positional[current ? 0 : 1])));
    std::string value = detail::date_part(part, epoch, zone);
    if (value.empty()) return false;
    return match(n, {value}, expand(n.positional.back().strings));
  }

  static bool type_matches(mime::part const& p, std::vector<std::string> const& types) {
    for (auto const& t : types) {
      if (t.empty()) return true;
      auto slash = t.find('/');
      if (slash == std::string::npos ? text::iequals(t, p.type)
                                     : (text::iequals(t.substr(0, slash), p.type) && text::iequals(t.substr(slash + 1), p.subtype)))
        return true;
    }
    return false;
  }

  void leaves(mime::part const& p, std::vector<std::string> const& types, std::vector<std::string>& out) {
    if (!p.children.empty()) {
      for (auto const& c : p.children) leaves(c, types, out);
      return;
    }
    if (!type_matches(p, types)) return;
    std::string_view raw = env_.message.substr(p.body_begin, p.end - p.body_begin);
    auto cte = p.header("content-transfer-encoding");
    std::string enc = cte ? lower(mime::unfold(*cte)) : std::string();
    auto decoded = mime::decode(raw, enc);
    std::string bytes = decoded ? std::move(*decoded) : std::string(raw);
    if (p.type == "text") {
      std::string charset;
      for (auto const& [k, v] : p.params)
        if (k == "charset") charset = v;
      if (!charset.empty())
        if (auto u = mime::charset_to_utf8(charset, bytes)) bytes = std::move(*u);
    }
    out.push_back(std::move(bytes));
  }

  bool body_test(node const& n) {
    std::vector<std::string> values;
    mime::part const& root = tree();
    if (n.has(":raw")) {
      values.emplace_back(env_.message.substr(std::min(root.body_begin, env_.message.size())));
    } else {
      std::vector<std::string> types{"text"};
      if (argument const* c = n.tag(":content")) types = expand(c->strings);
      leaves(root, types, values);
    }
    return match(n, values, expand(n.positional[0].strings));
  }

  // ---- commands ----
  void block(std::vector<node> const& cmds) {
    bool chain_done = true;
    for (auto const& c : cmds) {
      if (stopped_ || error_) return;
      line_ = c.line;
      if (c.name == "if") {
        chain_done = test(c.tests[0]);
        if (chain_done) block(c.block);
      } else if (c.name == "elsif") {
        if (!chain_done) {
          chain_done = test(c.tests[0]);
          if (chain_done) block(c.block);
        }
      } else if (c.name == "else") {
        if (!chain_done) block(c.block);
        chain_done = true;
      } else {
        command(c);
      }
    }
  }

  std::vector<std::string> flags_of(node const& n) {
    if (argument const* f = n.tag(":flags")) return split_flags(expand(f->strings));
    return split_flags({flags_});
  }

  bool count_action() {
    if (++action_count_ > lim_.max_actions)
      fail(errc::runtime_limit, "more than " + std::to_string(lim_.max_actions) + " actions");
    return !error_;
  }

  void store(std::string mailbox, std::vector<std::string> flags, bool copy, bool create, bool is_keep) {
    for (auto& a : actions_) {
      std::string const* existing = nullptr;
      static std::string const inbox = "INBOX";
      if (std::holds_alternative<keep_action>(a)) existing = &inbox;
      else if (auto* f = std::get_if<fileinto_action>(&a)) existing = &f->mailbox;
      if (existing && (*existing == mailbox || (text::iequals(*existing, "INBOX") && text::iequals(mailbox, "INBOX")))) {
        if (auto* f = std::get_if<fileinto_action>(&a)) {
          f->copy = f->copy && copy;
          f->create = f->create || create;
        }
        return;  // the same mailbox again: one copy
      }
    }
    if (!count_action()) return;
    if (is_keep) actions_.push_back(keep_action{std::move(flags), false});
    else actions_.push_back(fileinto_action{std::move(mailbox), std::move(flags), copy, create});
  }

  void command(node const& n) {
    std::string const& c = n.name;
    if (c == "stop") {
      stopped_ = true;
    } else if (c == "keep") {
      store("INBOX", flags_of(n), false, false, true);
      implicit_keep_ = false;
    } else if (c == "discard") {
      implicit_keep_ = false;
      if (!std::exchange(discarded_, true)) actions_.push_back(discard_action{});
    } else if (c == "fileinto") {
      std::string mailbox = expand(str(n.positional[0]));
      if (mailbox.empty()) return fail(errc::runtime_error, "fileinto: empty mailbox name");
      store(mailbox, flags_of(n), n.has(":copy"), n.has(":create"), false);
      if (!n.has(":copy")) implicit_keep_ = false;
    } else if (c == "redirect") {
      std::string addr = expand(str(n.positional[0]));
      if (!detail::valid_mail_address(addr)) return fail(errc::runtime_error, "redirect: invalid address \"" + addr + "\"");
      bool dup = false;
      for (auto& a : actions_)
        if (auto* r = std::get_if<redirect_action>(&a); r && same_address(r->address, addr)) {
          r->copy = r->copy && n.has(":copy");
          dup = true;
        }
      if (!dup) {
        if (++redirects_ > lim_.max_redirects)
          return fail(errc::runtime_limit, "more than " + std::to_string(lim_.max_redirects) + " redirects");
        if (!count_action()) return;
        actions_.push_back(redirect_action{addr, n.has(":copy")});
      }
      if (!n.has(":copy")) implicit_keep_ = false;
    } else if (c == "reject" || c == "ereject") {
      for (auto const& a : actions_)
        if (std::holds_alternative<reject_action>(a)) return fail(errc::action_conflict, "more than one reject/ereject");
      if (!count_action()) return;
      actions_.push_back(reject_action{expand(str(n.positional[0])), c == "ereject"});
      reject_line_ = n.line;
      implicit_keep_ = false;
    } else if (c == "set") {
      set_command(n);
    } else if (c == "setflag" || c == "addflag" || c == "removeflag") {
      flag_command(n);
    } else if (c == "vacation") {
      vacation(n);
    } else {
      fail(errc::runtime_error, "command \"" + c + "\" is not implemented");
    }
  }

  void set_command(node const& n) {
    std::string v = expand(str(n.positional[1]));
    if (n.has(":lower")) v = lower(v);
    if (n.has(":upper")) v = text::to_upper(v);
    if (n.has(":lowerfirst") && !v.empty()) v[0] = text::to_lower(v[0]);
    if (n.has(":upperfirst") && !v.empty()) v[0] = text::to_upper(v[0]);
    if (n.has(":quotewildcard")) {
      std::string q;
      for (char ch : v) {
        if (ch == '*' || ch == '?' || ch == '\\') q.push_back('\\');
        q.push_back(ch);
      }
      v = std::move(q);
    }
    if (n.has(":length")) {
      std::size_t chars = 0;
      for (char ch : v) chars += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
      v = std::to_string(chars);
    }
    set_variable(str(n.positional[0]), std::move(v));
  }

  void flag_command(node const& n) {
    std::string* target = &flags_;
    std::string var_value;
    std::string const* var_name = nullptr;
    if (n.positional.size() == 2) {
      var_name = &n.positional[0].strings.front();
      var_value = variable(*var_name);
      target = &var_value;
    }
    auto given = split_flags(expand(n.positional.back().strings));
    std::vector<std::string> now;
    if (n.name == "setflag") {
      now = given;
    } else {
      now = split_flags({*target});
      for (auto const& f : given) {
        auto same = [&](std::string const& o) { return text::iequals(o, f); };
        if (n.name == "addflag") {
          if (std::none_of(now.begin(), now.end(), same)) now.push_back(f);
        } else {
          now.erase(std::remove_if(now.begin(), now.end(), same), now.end());
        }
      }
    }
    if (now.size() > lim_.max_flags) return fail(errc::runtime_limit, "more than " + std::to_string(lim_.max_flags) + " flags");
    *target = join_flags(now);
    if (var_name) set_variable(*var_name, std::move(var_value));
  }

  // ---- vacation (RFC 5230) ----
  std::vector<std::string> header_addresses(std::initializer_list<char const*> names) {
    std::vector<std::string> out;
    for (char const* h : names)
      for (auto raw : raw_fields(h))
        for (auto const& a : mime::parse_address_list(mime::unfold(raw)))
          if (!a.group && !a.group_end) out.push_back(lower(a.host.empty() ? a.mailbox : a.mailbox + "@" + a.host));
    return out;
  }

  bool automated_sender(std::string const& sender) {
    std::string local = sender.substr(0, sender.rfind('@'));
    if (local == "mailer-daemon" || local == "listserv" || local == "majordomo" || local == "postmaster") return true;
    if (local.rfind("owner-", 0) == 0) return true;
    if (local.size() >= 8 && local.compare(local.size() - 8, 8, "-request") == 0) return true;
    if (local.find("-bounces") != std::string::npos) return true;
    for (char const* h : {"list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post", "list-owner",
                          "list-archive"})
      if (!raw_fields(h).empty()) return true;
    for (auto raw : raw_fields("auto-submitted")) {
      std::string v = lower(mime::unfold(raw));
      if (v.substr(0, v.find_first_of(" \t;(")) != "no") return true;
    }
    for (auto raw : raw_fields("precedence")) {
      std::string v = lower(mime::unfold(raw));
      if (v == "bulk" || v == "list" || v == "junk") return true;
    }
    return false;
  }

  void vacation(node const& n) {
    for (auto const& a : actions_)
      if (std::holds_alternative<vacation_action>(a)) return fail(errc::action_conflict, "more than one vacation");
    if (vacation_seen_) return fail(errc::action_conflict, "more than one vacation");
    vacation_seen_ = true;
    vacation_action v;
    v.reason = expand(str(n.positional[0]));
    v.mime = n.has(":mime");
    if (argument const* a = n.tag(":subject")) v.subject = expand(str(*a));
    if (argument const* a = n.tag(":from")) v.from = expand(str(*a));
    if (argument const* a = n.tag(":seconds")) v.period = static_cast<std::int64_t>(std::min<std::uint64_t>(a->number, 365ull * 86400));
    else {
      std::uint64_t days = 7;
      if (argument const* d = n.tag(":days")) days = std::clamp<std::uint64_t>(d->number, 1, 365);
      v.period = static_cast<std::int64_t>(days) * 86400;
    }
    if (argument const* a = n.tag(":handle")) v.handle = expand(str(*a));
    else v.handle = v.reason + "\x1f" + v.subject + "\x1f" + v.from + (v.mime ? "\x1fmime" : "");

    std::string sender = lower(env_.envelope_from);
    if (sender.empty() || automated_sender(sender)) return;
    std::vector<std::string> mine{lower(env_.envelope_to)};
    if (!env_.original_recipient.empty()) mine.push_back(lower(env_.original_recipient));
    for (auto const& u : env_.user_addresses) mine.push_back(lower(u));
    if (argument const* a = n.tag(":addresses"))
      for (auto const& s : expand(a->strings)) mine.push_back(lower(s));
    if (std::find(mine.begin(), mine.end(), sender) != mine.end()) return;
    auto recipients = header_addresses({"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"});
    bool addressed = std::any_of(recipients.begin(), recipients.end(),
                                 [&](std::string const& r) { return std::find(mine.begin(), mine.end(), r) != mine.end(); });
    if (!addressed) return;
    if (!env_.vacation) return;
    std::string key = v.handle + "\n" + sender;
    if (env_.vacation->seen(key, v.period, env_.now)) return;
    if (v.subject.empty()) {
      auto subj = raw_fields("subject");
      v.subject = "Auto: " + (subj.empty() ? std::string("(no subject)") : mime::decode_header_value(subj.front()));
    }
    if (auto id = raw_fields("message-id"); !id.empty()) v.in_reply_to = mime::unfold(id.front());
    if (auto refs = raw_fields("references"); !refs.empty()) v.references = mime::unfold(refs.front());
    if (!v.in_reply_to.empty()) v.references += (v.references.empty() ? "" : " ") + v.in_reply_to;
    v.to = env_.envelope_from;
    if (!count_action()) return;
    vacation_key_ = std::move(key);
    actions_.push_back(std::move(v));
  }

  // Conflicts (RFC 5429 section 2): reject/ereject cannot go with anything that delivers.
  void finish() {
    bool rejected = false;
    for (auto const& a : actions_) rejected = rejected || std::holds_alternative<reject_action>(a);
    if (rejected) {
      for (auto const& a : actions_)
        if (std::holds_alternative<keep_action>(a) || std::holds_alternative<fileinto_action>(a) ||
            std::holds_alternative<redirect_action>(a) || std::holds_alternative<vacation_action>(a)) {
          line_ = reject_line_;
          return fail(errc::action_conflict, "reject/ereject conflicts with " + describe(a));
        }
    }
    if (implicit_keep_) {
      bool kept = std::any_of(actions_.begin(), actions_.end(), [](action const& a) {
        auto* f = std::get_if<fileinto_action>(&a);
        return std::holds_alternative<keep_action>(a) || (f && text::iequals(f->mailbox, "INBOX"));
      });
      if (!kept) actions_.push_back(keep_action{split_flags({flags_}), true});
    }
  }

  script const& s_;
  environment const& env_;
  limits const& lim_;
  detail::budget work_;
  bool vars_on_ = false;
  std::optional<mime::part> tree_;
  std::unordered_map<std::string, std::string> vars_;
  std::vector<std::string> match_;
  std::string flags_;
  std::vector<action> actions_;
  std::size_t action_count_ = 0, redirects_ = 0;
  bool implicit_keep_ = true, discarded_ = false, stopped_ = false, vacation_seen_ = false;
  std::optional<std::string> vacation_key_;
  std::optional<diagnostic> error_;
  unsigned line_ = 0, reject_line_ = 0;
};

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string flag_text(std::vector<std::string> const& f) { return f.empty() ? "" : " :flags " + quote(join_flags(f)); }

}  // namespace

run_result run(script const& s, environment const& env, limits const& lim) { return runner(s, env, lim).go(); }

std::string describe(action const& a) {
  struct visitor {
    std::string operator()(keep_action const& k) const { return (k.implicit ? "implicit keep" : "keep") + flag_text(k.flags); }
    std::string operator()(fileinto_action const& f) const {
      return std::string("fileinto") + (f.copy ? " :copy" : "") + (f.create ? " :create" : "") + flag_text(f.flags) + " " +
             quote(f.mailbox);
    }
    std::string operator()(redirect_action const& r) const {
      return std::string("redirect") + (r.copy ? " :copy " : " ") + quote(r.address);
    }
    std::string operator()(reject_action const& r) const { return (r.extended ? "ereject " : "reject ") + quote(r.reason); }
    std::string operator()(discard_action const&) const { return "discard"; }
    std::string operator()(vacation_action const& v) const {
      return "vacation to " + quote(v.to) + " subject " + quote(v.subject) + " period " + std::to_string(v.period) +
             (v.mime ? " :mime" : "") + " " + quote(v.reason);
    }
  };
  return std::visit(visitor{}, a);
}

}  // namespace mailroom::sieve
