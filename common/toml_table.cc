#include "common/toml_table.h"

#include <utility>

namespace portier {

TomlTable::TomlTable(TomlValue table, std::string name)
    : t_(std::move(table)), name_(std::move(name)) {}

std::string TomlTable::name(std::string_view key) const {
  return name_.empty() ? std::string(key) : name_ + "." + std::string(key);
}

std::optional<TomlValue> TomlTable::read(std::string_view key) {
  known_.emplace(key);
  return t_.get(key);
}

Error TomlTable::error(std::string_view key, std::string why) const {
  auto v = t_.get(key);
  return Error{Errc::invalid_argument, v ? v->where() : t_.where(), name(key), std::move(why)};
}

Error TomlTable::error_here(std::string why) const {
  return Error{Errc::invalid_argument, t_.where(), name_, std::move(why)};
}

Error TomlTable::located(const Error& e) const {
  const std::string key = e.what.substr(0, e.what.find(' '));
  if (!key.empty() && has(key)) return error(key, e.what + ": " + e.why);
  return error_here(e.message());
}

Result<void> TomlTable::str(std::string_view key, std::string& out) {
  auto v = read(key);
  if (!v) return {};
  const auto* s = v->string();
  if (!s) return std::unexpected(error(key, "must be a string"));
  out = *s;
  return {};
}

Result<void> TomlTable::integer64(std::string_view key, std::int64_t lo, std::int64_t hi,
                                  std::optional<std::int64_t>& out) {
  auto v = read(key);
  if (!v) return {};
  auto i = v->integer();
  if (!i) return std::unexpected(error(key, "must be an integer"));
  if (*i < lo || *i > hi) {
    return std::unexpected(error(key, "must be " + std::to_string(lo) + ".." + std::to_string(hi)));
  }
  out = *i;
  return {};
}

Result<void> TomlTable::boolean(std::string_view key, bool& out) {
  auto v = read(key);
  if (!v) return {};
  auto b = v->boolean();
  if (!b) return std::unexpected(error(key, "must be true or false"));
  out = *b;
  return {};
}

Result<void> TomlTable::strings(std::string_view key, std::vector<std::string>& out) {
  auto v = read(key);
  if (!v) return {};
  const std::string why = "must be an array of strings";
  if (!v->is_array()) return std::unexpected(error(key, why));
  std::vector<std::string> list;
  for (const auto& el : v->elements()) {
    const auto* s = el.string();
    if (!s) return std::unexpected(Error{Errc::invalid_argument, el.where(), name(key), why});
    list.push_back(*s);
  }
  out = std::move(list);
  return {};
}

Result<void> TomlTable::number(std::string_view key, double lo, double hi, double& out) {
  auto v = read(key);
  if (!v) return {};
  auto d = v->number();
  if (!d || *d < lo || *d > hi) {
    return std::unexpected(
        error(key, "must be a number " + std::to_string(lo) + ".." + std::to_string(hi)));
  }
  out = *d;
  return {};
}

std::optional<TomlValue> TomlTable::take(std::string_view key) { return read(key); }

Result<std::optional<TomlTable>> TomlTable::table(std::string_view key,
                                                  const std::string& must_be) {
  auto v = read(key);
  if (!v) return std::optional<TomlTable>();
  if (!v->is_table()) return std::unexpected(error(key, must_be));
  return std::optional<TomlTable>(TomlTable(*v, name(key)));
}

Result<std::vector<TomlTable>> TomlTable::tables(std::string_view key, const std::string& must_be) {
  std::vector<TomlTable> out;
  auto v = read(key);
  if (!v) return out;
  if (!v->is_array_of_tables()) return std::unexpected(error(key, must_be));
  int i = 0;
  for (auto& el : v->elements()) {
    out.emplace_back(el, name(key) + "[" + std::to_string(++i) + "]");
  }
  return out;
}

bool TomlTable::all_keys_known() const {
  for (const auto& e : t_.entries()) {
    if (!known_.count(e.key)) return false;
  }
  return true;
}

Result<void> TomlTable::no_unknown_keys() const {
  // Report the unknown key that comes first in the file, not first in key order.
  std::optional<TomlValue::Entry> first;
  for (auto& e : t_.entries()) {
    if (known_.count(e.key)) continue;
    if (!first || e.key_line < first->key_line ||
        (e.key_line == first->key_line && e.key_column < first->key_column)) {
      first = e;
    }
  }
  if (!first) return {};
  std::string why = "unknown key";
  const auto best = nearest_word(first->key, {known_.begin(), known_.end()});
  if (!best.empty()) why += " (did you mean '" + best + "'?)";
  why += " (see README.md, Configuration)";
  return std::unexpected(
      Error{Errc::invalid_argument, first->value.where(), name(first->key), std::move(why)});
}

}  // namespace portier
