#include "policy/policy_parser.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/toml_value.h"
#include "policy/policy_limits.h"

namespace portier::policy {

namespace {

constexpr std::string_view kExpectedOps =
    "list, watch, read, claim, write, configure, transmit, pair, authorize, power, *";
constexpr std::int64_t kMaxId = 4294967295;

std::string join(std::initializer_list<std::string_view> words) {
  std::string out;
  for (auto w : words) {
    if (!out.empty()) out += ", ";
    out += w;
  }
  return out;
}

bool valid_app_name(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Walks the TOML tree once; the first problem found is kept in err_ and every
// step returns false from then on.
class Parser {
 public:
  explicit Parser(const std::string& source) : source_(source) {}

  Result<PolicyData> run(std::string_view text);

 private:
  bool parse_version(const TomlValue& root);
  bool parse_apps(const TomlValue& root);
  bool parse_app(const TomlValue& t, std::size_t index);
  bool parse_rules(const TomlValue& root);
  bool parse_rule(const TomlValue& t, std::size_t index);
  bool parse_rule_apps(const TomlValue& t, const std::string& what, Policy::RuleDecl& rule);
  bool resolve_app(const TomlValue& n, const std::string& what, std::string_view key,
                   Policy::RuleDecl& rule);
  bool parse_ops(const TomlValue& n, const std::string& what, Policy::RuleDecl& rule);
  bool parse_attributes(const TomlValue& n, const std::string& what, Policy::RuleDecl& rule);
  bool parse_ids(const TomlValue& n, const std::string& what, std::string_view key,
                 std::vector<std::uint32_t>& out);
  const std::string* string_value(const TomlValue& n, const std::string& what,
                                  std::string_view key);
  const std::string* nonempty_string(const TomlValue& n, const std::string& what,
                                     std::string_view key);
  bool check_keys(const TomlValue& t, const std::string& what,
                  std::initializer_list<std::string_view> allowed);

  // Where `key` of `t` is written (the table's header when it is absent).
  std::string key_where(const TomlValue& t, std::string_view key) const;
  bool fail_at(std::string where, std::string what, std::string why);

  const std::string& source_;
  PolicyData data_;
  std::map<std::string, int, std::less<>> app_lines_;  // name → line, for duplicates
  std::optional<Error> err_;
};

std::string Parser::key_where(const TomlValue& t, std::string_view key) const {
  for (const auto& e : t.entries()) {
    if (e.key == key) return e.key_where();
  }
  return t.where();
}

bool Parser::fail_at(std::string where, std::string what, std::string why) {
  err_ = Error{Errc::invalid_argument, std::move(where), std::move(what), std::move(why)};
  return false;
}

bool Parser::check_keys(const TomlValue& t, const std::string& what,
                        std::initializer_list<std::string_view> allowed) {
  std::optional<TomlValue::Entry> first;
  for (auto& e : t.entries()) {
    if (std::find(allowed.begin(), allowed.end(), e.key) != allowed.end()) continue;
    // Report the unknown key that comes first in the file, not first in key order.
    if (!first || e.key_line < first->key_line ||
        (e.key_line == first->key_line && e.key_column < first->key_column)) {
      first = e;
    }
  }
  if (!first) return true;
  std::string why = "unknown key '" + first->key + "'";
  const auto best = nearest_word(first->key, {allowed.begin(), allowed.end()});
  if (!best.empty()) why += " (did you mean '" + best + "'?)";
  why += " (expected one of " + join(allowed) + ")";
  return fail_at(first->key_where(), what, why);
}

const std::string* Parser::string_value(const TomlValue& n, const std::string& what,
                                        std::string_view key) {
  const auto* s = n.string();
  if (!s) {
    fail_at(n.where(), what, std::string(key) + ": expected a string, got " + n.type_name());
    return nullptr;
  }
  if (s->find('\0') != std::string::npos) {
    fail_at(n.where(), what, std::string(key) + ": must not contain NUL characters");
    return nullptr;
  }
  return s;
}

const std::string* Parser::nonempty_string(const TomlValue& n, const std::string& what,
                                           std::string_view key) {
  const auto* s = string_value(n, what, key);
  if (s && s->empty()) {
    fail_at(n.where(), what,
            std::string(key) + ": must not be empty (leave the key out to match anything)");
    return nullptr;
  }
  return s;
}

bool Parser::parse_ids(const TomlValue& n, const std::string& what, std::string_view key,
                       std::vector<std::uint32_t>& out) {
  const std::string k(key);
  auto one = [&](const TomlValue& v) {
    const auto i = v.integer();
    if (!i) {
      return fail_at(v.where(), what,
                     k + ": expected an integer or an array of integers, got " + v.type_name());
    }
    const std::int64_t x = *i;
    if (x < 0 || x > kMaxId) {
      return fail_at(v.where(), what,
                     k + " " + std::to_string(x) + " is out of range (expected 0 to 4294967295)");
    }
    out.push_back(static_cast<std::uint32_t>(x));
    return true;
  };
  if (n.is_array()) {
    const auto a = n.elements();
    if (a.empty()) {
      return fail_at(n.where(), what,
                     k + ": empty array (give at least one id, or leave the key out)");
    }
    for (const auto& v : a) {
      if (!one(v)) return false;
    }
    return true;
  }
  return one(n);
}

bool Parser::parse_version(const TomlValue& root) {
  const auto v = root.get("version");
  if (!v) return fail_at(root.where(), "version", "missing 'version = 1' at the top of the file");
  const auto i = v->integer();
  if (!i) return fail_at(v->where(), "version", "expected the integer 1, got " + v->type_name());
  if (*i != 1) {
    return fail_at(v->where(), "version",
                   "unsupported version " + std::to_string(*i) + " (this Portier reads version 1)");
  }
  return true;
}

bool Parser::parse_apps(const TomlValue& root) {
  const auto n = root.get("app");
  if (!n) return true;
  if (!n->is_array_of_tables()) {
    return fail_at(n->where(), "app",
                   "expected [[app]] tables (an array of tables), got " + n->type_name());
  }
  const auto apps = n->elements();
  for (std::size_t i = 0; i < apps.size(); ++i) {
    if (!parse_app(apps[i], i)) return false;
  }
  return true;
}

bool Parser::parse_app(const TomlValue& t, std::size_t index) {
  std::string what = "app " + std::to_string(index + 1);
  if (const auto name = t.get("name"); name && name->string()) {
    what = "app '" + *name->string() + "'";
  }
  if (!check_keys(t, what, {"name", "uid", "gid", "exe", "sha256", "unit"})) return false;

  Policy::AppDecl app;
  app.line = t.line();
  const auto name_node = t.get("name");
  if (!name_node) {
    return fail_at(t.where(), what,
                   "missing 'name' (a unique name made of letters, digits, '_', '.', '-')");
  }
  const auto* name = string_value(*name_node, what, "name");
  if (!name) return false;
  if (!valid_app_name(*name)) {
    return fail_at(name_node->where(), what,
                   "name '" + *name + "' is not valid (expected letters, digits, '_', '.', '-')");
  }
  if (auto it = app_lines_.find(*name); it != app_lines_.end()) {
    return fail_at(name_node->where(), what,
                   "duplicate app name '" + *name + "' (first declared at line " +
                       std::to_string(it->second) + ")");
  }
  app.name = *name;

  if (const auto n = t.get("uid"); n && !parse_ids(*n, what, "uid", app.uids)) return false;
  if (const auto n = t.get("gid"); n && !parse_ids(*n, what, "gid", app.gids)) return false;
  if (const auto n = t.get("exe")) {
    const auto* s = nonempty_string(*n, what, "exe");
    if (!s) return false;
    if (s->front() != '/') {
      return fail_at(n->where(), what,
                     "exe '" + *s + "' is not an absolute path (expected it to start with '/')");
    }
    app.exe = *s;
  }
  if (const auto n = t.get("sha256")) {
    const auto* s = string_value(*n, what, "sha256");
    if (!s) return false;
    if (s->size() != 64 || !std::all_of(s->begin(), s->end(), is_hex)) {
      return fail_at(n->where(), what,
                     "sha256 is not a SHA-256 digest (expected 64 hexadecimal characters, got " +
                         std::to_string(s->size()) + " characters)");
    }
    app.sha256.resize(s->size());
    std::transform(s->begin(), s->end(), app.sha256.begin(), lower);
  }
  if (const auto n = t.get("unit")) {
    const auto* s = nonempty_string(*n, what, "unit");
    if (!s) return false;
    app.unit = *s;
  }
  if (app.uids.empty() && app.gids.empty() && app.exe.empty() && app.sha256.empty() &&
      app.unit.empty()) {
    return fail_at(t.where(), what,
                   "no identity fields (expected at least one of uid, gid, exe, sha256, unit; an "
                   "app without them would match every caller)");
  }
  app_lines_.emplace(app.name, app.line);
  data_.apps.push_back(std::move(app));
  return true;
}

bool Parser::parse_rules(const TomlValue& root) {
  const auto n = root.get("rule");
  if (!n) return true;
  if (!n->is_array_of_tables()) {
    return fail_at(n->where(), "rule",
                   "expected [[rule]] tables (an array of tables), got " + n->type_name());
  }
  const auto rules = n->elements();
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (!parse_rule(rules[i], i)) return false;
  }
  return true;
}

bool Parser::resolve_app(const TomlValue& n, const std::string& what, std::string_view key,
                         Policy::RuleDecl& rule) {
  const auto* s = string_value(n, what, key);
  if (!s) return false;
  if (*s == "*") {
    rule.any_app = true;
    return true;
  }
  for (std::size_t i = 0; i < data_.apps.size(); ++i) {
    if (data_.apps[i].name == *s) {
      if (std::find(rule.apps.begin(), rule.apps.end(), i) == rule.apps.end()) {
        rule.apps.push_back(i);
      }
      return true;
    }
  }
  return fail_at(n.where(), what,
                 "unknown app '" + *s +
                     "' (expected the name of an [[app]], or \"*\" for any "
                     "caller)");
}

bool Parser::parse_rule_apps(const TomlValue& t, const std::string& what, Policy::RuleDecl& rule) {
  const auto app = t.get("app");
  const auto apps = t.get("apps");
  if (app && apps) {
    return fail_at(key_where(t, "apps"), what,
                   "both 'app' and 'apps' given (expected exactly one of them)");
  }
  if (!app && !apps) {
    return fail_at(t.where(), what,
                   "missing 'app' (expected an app name, \"*\" for any caller, or apps = [...])");
  }
  if (app) return resolve_app(*app, what, "app", rule);
  if (!apps->is_array()) {
    return fail_at(apps->where(), what,
                   "apps: expected an array of app names, got " + apps->type_name());
  }
  const auto arr = apps->elements();
  if (arr.empty()) {
    return fail_at(apps->where(), what, "apps: empty array (expected at least one app name)");
  }
  for (const auto& v : arr) {
    if (!resolve_app(v, what, "apps", rule)) return false;
  }
  return true;
}

bool Parser::parse_ops(const TomlValue& n, const std::string& what, Policy::RuleDecl& rule) {
  if (!n.is_array()) {
    return fail_at(n.where(), what,
                   "ops: expected an array of operations (one of " + std::string(kExpectedOps) +
                       "), got " + n.type_name());
  }
  const auto arr = n.elements();
  if (arr.empty()) {
    return fail_at(n.where(), what,
                   "ops: empty array (expected at least one of " + std::string(kExpectedOps) + ")");
  }
  for (const auto& v : arr) {
    const auto* s = string_value(v, what, "ops");
    if (!s) return false;
    if (*s == "*") {
      rule.ops = static_cast<std::uint16_t>((1u << kOpCount) - 1);
      continue;
    }
    const auto op = parse_op(*s);
    if (!op) {
      return fail_at(
          v.where(), what,
          "unknown operation '" + *s + "' (expected one of " + std::string(kExpectedOps) + ")");
    }
    rule.ops |= static_cast<std::uint16_t>(1u << static_cast<unsigned>(*op));
  }
  return true;
}

bool Parser::parse_attributes(const TomlValue& n, const std::string& what, Policy::RuleDecl& rule) {
  if (!n.is_table()) {
    return fail_at(
        n.where(), what,
        "attributes: expected a table such as { vendor = \"0c2e*\" }, got " + n.type_name());
  }
  for (const auto& entry : n.entries()) {
    const std::string& key = entry.key;
    if (key.empty() || key.find('\0') != std::string::npos) {
      return fail_at(entry.key_where(), what,
                     "attributes: an attribute name must be non-empty and free of NUL");
    }
    const auto* glob = nonempty_string(entry.value, what, "attributes." + key);
    if (!glob) return false;
    rule.attributes.emplace_back(key, Glob(*glob));
  }
  return true;
}

bool Parser::parse_rule(const TomlValue& t, std::size_t index) {
  const std::string what = "rule " + std::to_string(index + 1);
  if (!check_keys(
          t, what,
          {"app", "apps", "device", "class", "attributes", "ops", "effect", "require_health"})) {
    return false;
  }
  Policy::RuleDecl rule;
  rule.line = t.line();
  if (!parse_rule_apps(t, what, rule)) return false;
  if (const auto n = t.get("device")) {
    const auto* s = nonempty_string(*n, what, "device");
    if (!s) return false;
    rule.device.emplace(*s);
  }
  if (const auto n = t.get("class")) {
    const auto* s = nonempty_string(*n, what, "class");
    if (!s) return false;
    rule.device_class = *s;
  }
  if (const auto n = t.get("attributes"); n && !parse_attributes(*n, what, rule)) {
    return false;
  }
  const auto ops = t.get("ops");
  if (!ops) {
    return fail_at(t.where(), what,
                   "missing 'ops' (expected an array of " + std::string(kExpectedOps) + ")");
  }
  if (!parse_ops(*ops, what, rule)) return false;
  if (const auto n = t.get("effect")) {
    const auto* s = string_value(*n, what, "effect");
    if (!s) return false;
    if (*s == "allow") {
      rule.allow = true;
    } else if (*s == "deny") {
      rule.allow = false;
    } else {
      return fail_at(n->where(), what,
                     "unknown effect '" + *s + "' (expected \"allow\" or \"deny\")");
    }
  }
  if (const auto n = t.get("require_health")) {
    const auto* s = string_value(*n, what, "require_health");
    if (!s) return false;
    if (*s == "ok") {
      rule.require_health = Health::ok;
    } else if (*s == "degraded") {
      rule.require_health = Health::degraded;
    } else {
      return fail_at(n->where(), what,
                     "unknown require_health '" + *s +
                         "' (expected \"ok\": only while healthy, or \"degraded\": not while "
                         "compromised)");
    }
  }
  data_.rules.push_back(std::move(rule));
  return true;
}

Result<PolicyData> Parser::run(std::string_view text) {
  data_.source = source_;
  if (text.size() > kMaxPolicyBytes) {
    return fail(Errc::invalid_argument, source_, "policy",
                "is " + std::to_string(text.size()) + " bytes, over the limit of " +
                    std::to_string(kMaxPolicyBytes) + " bytes (1 MiB)");
  }
  auto doc = TomlValue::parse(text, source_, "TOML syntax error");
  if (!doc) return std::unexpected(doc.error());
  const TomlValue& root = *doc;
  const bool ok = check_keys(root, "top level", {"version", "app", "rule"}) &&
                  parse_version(root) && parse_apps(root) && parse_rules(root);
  if (!ok) return std::unexpected(std::move(*err_));
  return std::move(data_);
}

}  // namespace

Result<PolicyData> parse_policy_text(std::string_view text, const std::string& source) {
  return Parser(source).run(text);
}

}  // namespace portier::policy
