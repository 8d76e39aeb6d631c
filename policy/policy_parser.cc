#include "policy/policy_parser.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy_limits.h"

namespace portier::policy {

namespace {

constexpr std::string_view kExpectedOps =
    "list, watch, read, claim, write, configure, transmit, pair, authorize, power, *";
constexpr std::int64_t kMaxId = 4294967295;

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// Levenshtein distance, to turn "unknown key 'opps'" into a suggestion.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

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
  bool parse_version(const toml::table& root);
  bool parse_apps(const toml::table& root);
  bool parse_app(const toml::table& t, std::size_t index);
  bool parse_rules(const toml::table& root);
  bool parse_rule(const toml::table& t, std::size_t index);
  bool parse_rule_apps(const toml::table& t, const std::string& what, Policy::RuleDecl& rule);
  bool resolve_app(const toml::node& n, const toml::table& t, const std::string& what,
                   std::string_view key, Policy::RuleDecl& rule);
  bool parse_ops(const toml::node& n, const toml::table& t, const std::string& what,
                 Policy::RuleDecl& rule);
  bool parse_attributes(const toml::node& n, const toml::table& t, const std::string& what,
                        Policy::RuleDecl& rule);
  bool parse_ids(const toml::node& n, const toml::table& t, const std::string& what,
                 std::string_view key, std::vector<std::uint32_t>& out);
  const std::string* string_value(const toml::node& n, const toml::table& t,
                                  const std::string& what, std::string_view key);
  const std::string* nonempty_string(const toml::node& n, const toml::table& t,
                                     const std::string& what, std::string_view key);
  bool check_keys(const toml::table& t, const std::string& what,
                  std::initializer_list<std::string_view> allowed);

  std::string where(const toml::source_region& r) const;
  const toml::source_region& region(const toml::node& n, const toml::node& fallback) const;
  const toml::source_region& key_region(const toml::table& t, std::string_view key) const;
  bool fail_at(const toml::source_region& r, std::string what, std::string why);

  const std::string& source_;
  PolicyData data_;
  std::map<std::string, int, std::less<>> app_lines_;  // name → line, for duplicates
  std::optional<Error> err_;
};

std::string Parser::where(const toml::source_region& r) const {
  // toml++ leaves implicit nodes without a position; the top of the file is
  // the best place to point at then.
  const auto line = r.begin.line == 0 ? 1 : r.begin.line;
  const auto col = r.begin.column == 0 ? 1 : r.begin.column;
  return source_ + ":" + std::to_string(line) + ":" + std::to_string(col);
}

const toml::source_region& Parser::region(const toml::node& n, const toml::node& fallback) const {
  return n.source().begin.line != 0 ? n.source() : fallback.source();
}

const toml::source_region& Parser::key_region(const toml::table& t, std::string_view key) const {
  auto it = t.find(key);
  if (it != t.end() && it->first.source().begin.line != 0) return it->first.source();
  return t.source();
}

bool Parser::fail_at(const toml::source_region& r, std::string what, std::string why) {
  err_ = Error{Errc::invalid_argument, where(r), std::move(what), std::move(why)};
  return false;
}

bool Parser::check_keys(const toml::table& t, const std::string& what,
                        std::initializer_list<std::string_view> allowed) {
  const toml::key* first = nullptr;
  for (auto&& [k, v] : t) {
    if (std::find(allowed.begin(), allowed.end(), k.str()) != allowed.end()) continue;
    // Report the unknown key that comes first in the file, not first in key order.
    const auto& b = k.source().begin;
    if (!first || b.line < first->source().begin.line ||
        (b.line == first->source().begin.line && b.column < first->source().begin.column)) {
      first = &k;
    }
  }
  if (!first) return true;
  std::string why = "unknown key '" + std::string(first->str()) + "'";
  std::string_view best;
  std::size_t best_distance = 3;
  for (auto a : allowed) {
    const auto d = edit_distance(first->str(), a);
    if (d < best_distance && d < a.size()) {
      best = a;
      best_distance = d;
    }
  }
  if (!best.empty()) why += " (did you mean '" + std::string(best) + "'?)";
  why += " (expected one of " + join(allowed) + ")";
  return fail_at(first->source().begin.line != 0 ? first->source() : t.source(), what, why);
}

const std::string* Parser::string_value(const toml::node& n, const toml::table& t,
                                        const std::string& what, std::string_view key) {
  const auto* s = n.as_string();
  if (!s) {
    fail_at(region(n, t), what, std::string(key) + ": expected a string, got " + type_name(n));
    return nullptr;
  }
  if (s->get().find('\0') != std::string::npos) {
    fail_at(region(n, t), what, std::string(key) + ": must not contain NUL characters");
    return nullptr;
  }
  return &s->get();
}

const std::string* Parser::nonempty_string(const toml::node& n, const toml::table& t,
                                           const std::string& what, std::string_view key) {
  const auto* s = string_value(n, t, what, key);
  if (s && s->empty()) {
    fail_at(region(n, t), what,
            std::string(key) + ": must not be empty (leave the key out to match anything)");
    return nullptr;
  }
  return s;
}

bool Parser::parse_ids(const toml::node& n, const toml::table& t, const std::string& what,
                       std::string_view key, std::vector<std::uint32_t>& out) {
  const std::string k(key);
  auto one = [&](const toml::node& v) {
    const auto* i = v.as_integer();
    if (!i) {
      return fail_at(region(v, t), what,
                     k + ": expected an integer or an array of integers, got " + type_name(v));
    }
    const std::int64_t x = i->get();
    if (x < 0 || x > kMaxId) {
      return fail_at(region(v, t), what,
                     k + " " + std::to_string(x) + " is out of range (expected 0 to 4294967295)");
    }
    out.push_back(static_cast<std::uint32_t>(x));
    return true;
  };
  if (const auto* a = n.as_array()) {
    if (a->empty()) {
      return fail_at(region(n, t), what,
                     k + ": empty array (give at least one id, or leave the key out)");
    }
    for (const auto& v : *a) {
      if (!one(v)) return false;
    }
    return true;
  }
  return one(n);
}

bool Parser::parse_version(const toml::table& root) {
  const auto* v = root.get("version");
  if (!v) return fail_at(root.source(), "version", "missing 'version = 1' at the top of the file");
  const auto* i = v->as_integer();
  if (!i)
    return fail_at(region(*v, root), "version", "expected the integer 1, got " + type_name(*v));
  if (i->get() != 1) {
    return fail_at(
        region(*v, root), "version",
        "unsupported version " + std::to_string(i->get()) + " (this Portier reads version 1)");
  }
  return true;
}

bool Parser::parse_apps(const toml::table& root) {
  const auto* n = root.get("app");
  if (!n) return true;
  const auto* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    return fail_at(region(*n, root), "app",
                   "expected [[app]] tables (an array of tables), got " + type_name(*n));
  }
  for (std::size_t i = 0; i < arr->size(); ++i) {
    if (!parse_app(*arr->get(i)->as_table(), i)) return false;
  }
  return true;
}

bool Parser::parse_app(const toml::table& t, std::size_t index) {
  std::string what = "app " + std::to_string(index + 1);
  if (const auto* name = t.get_as<std::string>("name")) what = "app '" + name->get() + "'";
  if (!check_keys(t, what, {"name", "uid", "gid", "exe", "sha256", "unit"})) return false;

  Policy::AppDecl app;
  app.line = static_cast<int>(t.source().begin.line);
  const auto* name_node = t.get("name");
  if (!name_node) {
    return fail_at(t.source(), what,
                   "missing 'name' (a unique name made of letters, digits, '_', '.', '-')");
  }
  const auto* name = string_value(*name_node, t, what, "name");
  if (!name) return false;
  if (!valid_app_name(*name)) {
    return fail_at(region(*name_node, t), what,
                   "name '" + *name + "' is not valid (expected letters, digits, '_', '.', '-')");
  }
  if (auto it = app_lines_.find(*name); it != app_lines_.end()) {
    return fail_at(region(*name_node, t), what,
                   "duplicate app name '" + *name + "' (first declared at line " +
                       std::to_string(it->second) + ")");
  }
  app.name = *name;

  if (const auto* n = t.get("uid"); n && !parse_ids(*n, t, what, "uid", app.uids)) return false;
  if (const auto* n = t.get("gid"); n && !parse_ids(*n, t, what, "gid", app.gids)) return false;
  if (const auto* n = t.get("exe")) {
    const auto* s = nonempty_string(*n, t, what, "exe");
    if (!s) return false;
    if (s->front() != '/') {
      return fail_at(region(*n, t), what,
                     "exe '" + *s + "' is not an absolute path (expected it to start with '/')");
    }
    app.exe = *s;
  }
  if (const auto* n = t.get("sha256")) {
    const auto* s = string_value(*n, t, what, "sha256");
    if (!s) return false;
    if (s->size() != 64 || !std::all_of(s->begin(), s->end(), is_hex)) {
      return fail_at(region(*n, t), what,
                     "sha256 is not a SHA-256 digest (expected 64 hexadecimal characters, got " +
                         std::to_string(s->size()) + " characters)");
    }
    app.sha256.resize(s->size());
    std::transform(s->begin(), s->end(), app.sha256.begin(), lower);
  }
  if (const auto* n = t.get("unit")) {
    const auto* s = nonempty_string(*n, t, what, "unit");
    if (!s) return false;
    app.unit = *s;
  }
  if (app.uids.empty() && app.gids.empty() && app.exe.empty() && app.sha256.empty() &&
      app.unit.empty()) {
    return fail_at(t.source(), what,
                   "no identity fields (expected at least one of uid, gid, exe, sha256, unit; an "
                   "app without them would match every caller)");
  }
  app_lines_.emplace(app.name, app.line);
  data_.apps.push_back(std::move(app));
  return true;
}

bool Parser::parse_rules(const toml::table& root) {
  const auto* n = root.get("rule");
  if (!n) return true;
  const auto* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    return fail_at(region(*n, root), "rule",
                   "expected [[rule]] tables (an array of tables), got " + type_name(*n));
  }
  for (std::size_t i = 0; i < arr->size(); ++i) {
    if (!parse_rule(*arr->get(i)->as_table(), i)) return false;
  }
  return true;
}

bool Parser::resolve_app(const toml::node& n, const toml::table& t, const std::string& what,
                         std::string_view key, Policy::RuleDecl& rule) {
  const auto* s = string_value(n, t, what, key);
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
  return fail_at(region(n, t), what,
                 "unknown app '" + *s +
                     "' (expected the name of an [[app]], or \"*\" for any "
                     "caller)");
}

bool Parser::parse_rule_apps(const toml::table& t, const std::string& what,
                             Policy::RuleDecl& rule) {
  const auto* app = t.get("app");
  const auto* apps = t.get("apps");
  if (app && apps) {
    return fail_at(key_region(t, "apps"), what,
                   "both 'app' and 'apps' given (expected exactly one of them)");
  }
  if (!app && !apps) {
    return fail_at(t.source(), what,
                   "missing 'app' (expected an app name, \"*\" for any caller, or apps = [...])");
  }
  if (app) return resolve_app(*app, t, what, "app", rule);
  const auto* arr = apps->as_array();
  if (!arr) {
    return fail_at(region(*apps, t), what,
                   "apps: expected an array of app names, got " + type_name(*apps));
  }
  if (arr->empty()) {
    return fail_at(region(*apps, t), what, "apps: empty array (expected at least one app name)");
  }
  for (const auto& v : *arr) {
    if (!resolve_app(v, t, what, "apps", rule)) return false;
  }
  return true;
}

bool Parser::parse_ops(const toml::node& n, const toml::table& t, const std::string& what,
                       Policy::RuleDecl& rule) {
  const auto* arr = n.as_array();
  if (!arr) {
    return fail_at(region(n, t), what,
                   "ops: expected an array of operations (one of " + std::string(kExpectedOps) +
                       "), got " + type_name(n));
  }
  if (arr->empty()) {
    return fail_at(region(n, t), what,
                   "ops: empty array (expected at least one of " + std::string(kExpectedOps) + ")");
  }
  for (const auto& v : *arr) {
    const auto* s = string_value(v, t, what, "ops");
    if (!s) return false;
    if (*s == "*") {
      rule.ops = static_cast<std::uint16_t>((1u << kOpCount) - 1);
      continue;
    }
    const auto op = parse_op(*s);
    if (!op) {
      return fail_at(
          region(v, t), what,
          "unknown operation '" + *s + "' (expected one of " + std::string(kExpectedOps) + ")");
    }
    rule.ops |= static_cast<std::uint16_t>(1u << static_cast<unsigned>(*op));
  }
  return true;
}

bool Parser::parse_attributes(const toml::node& n, const toml::table& t, const std::string& what,
                              Policy::RuleDecl& rule) {
  const auto* attrs = n.as_table();
  if (!attrs) {
    return fail_at(
        region(n, t), what,
        "attributes: expected a table such as { vendor = \"0c2e*\" }, got " + type_name(n));
  }
  for (auto&& [k, v] : *attrs) {
    const std::string key(k.str());
    if (key.empty() || key.find('\0') != std::string::npos) {
      return fail_at(k.source().begin.line != 0 ? k.source() : region(n, t), what,
                     "attributes: an attribute name must be non-empty and free of NUL");
    }
    const auto* glob = nonempty_string(v, *attrs, what, "attributes." + key);
    if (!glob) return false;
    rule.attributes.emplace_back(key, Glob(*glob));
  }
  return true;
}

bool Parser::parse_rule(const toml::table& t, std::size_t index) {
  const std::string what = "rule " + std::to_string(index + 1);
  if (!check_keys(
          t, what,
          {"app", "apps", "device", "class", "attributes", "ops", "effect", "require_health"})) {
    return false;
  }
  Policy::RuleDecl rule;
  rule.line = static_cast<int>(t.source().begin.line);
  if (!parse_rule_apps(t, what, rule)) return false;
  if (const auto* n = t.get("device")) {
    const auto* s = nonempty_string(*n, t, what, "device");
    if (!s) return false;
    rule.device.emplace(*s);
  }
  if (const auto* n = t.get("class")) {
    const auto* s = nonempty_string(*n, t, what, "class");
    if (!s) return false;
    rule.device_class = *s;
  }
  if (const auto* n = t.get("attributes"); n && !parse_attributes(*n, t, what, rule)) {
    return false;
  }
  const auto* ops = t.get("ops");
  if (!ops) {
    return fail_at(t.source(), what,
                   "missing 'ops' (expected an array of " + std::string(kExpectedOps) + ")");
  }
  if (!parse_ops(*ops, t, what, rule)) return false;
  if (const auto* n = t.get("effect")) {
    const auto* s = string_value(*n, t, what, "effect");
    if (!s) return false;
    if (*s == "allow") {
      rule.allow = true;
    } else if (*s == "deny") {
      rule.allow = false;
    } else {
      return fail_at(region(*n, t), what,
                     "unknown effect '" + *s + "' (expected \"allow\" or \"deny\")");
    }
  }
  if (const auto* n = t.get("require_health")) {
    const auto* s = string_value(*n, t, what, "require_health");
    if (!s) return false;
    if (*s == "ok") {
      rule.require_health = Health::ok;
    } else if (*s == "degraded") {
      rule.require_health = Health::degraded;
    } else {
      return fail_at(region(*n, t), what,
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
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source_));
  } catch (const toml::parse_error& e) {
    return fail(Errc::invalid_argument, where(e.source()), "TOML syntax error",
                std::string(e.description()));
  } catch (const std::exception& e) {
    return fail(Errc::invalid_argument, source_, "TOML reader", e.what());
  }
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
