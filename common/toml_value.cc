#include "common/toml_value.h"

#include <toml++/toml.h>

#include <algorithm>
#include <exception>

namespace portier {

struct TomlValue::Document {
  toml::table root;
  std::string source;
};

namespace {

const toml::node& as_node(const void* p) { return *static_cast<const toml::node*>(p); }

std::string position(const std::string& source, int line, int column) {
  return source + ":" + std::to_string(line) + ":" + std::to_string(column);
}

}  // namespace

TomlValue::TomlValue(std::shared_ptr<const Document> doc, const void* node, int line, int column)
    : doc_(std::move(doc)), node_(node), line_(line), column_(column) {}

TomlValue TomlValue::child(const void* node) const {
  // toml++ leaves implicit nodes without a position: they take this one's.
  const auto& b = as_node(node).source().begin;
  if (b.line == 0) return TomlValue(doc_, node, line_, column_);
  return TomlValue(doc_, node, static_cast<int>(b.line), static_cast<int>(b.column));
}

Result<TomlValue> TomlValue::parse(std::string_view text, const std::string& source,
                                   const std::string& syntax_what) {
  auto doc = std::make_shared<Document>();
  doc->source = source;
  try {
    doc->root = toml::parse(text, std::string_view(source));
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return fail(Errc::invalid_argument,
                position(source, b.line == 0 ? 1 : static_cast<int>(b.line),
                         b.column == 0 ? 1 : static_cast<int>(b.column)),
                syntax_what, std::string(e.description()));
  } catch (const std::exception& e) {
    return fail(Errc::invalid_argument, source, "TOML reader", e.what());
  }
  const void* root = &doc->root;
  return TomlValue(std::shared_ptr<const Document>(std::move(doc)), root, 1, 1);
}

bool TomlValue::is_table() const { return as_node(node_).is_table(); }
bool TomlValue::is_array() const { return as_node(node_).is_array(); }
bool TomlValue::is_array_of_tables() const { return as_node(node_).is_array_of_tables(); }

const std::string* TomlValue::string() const {
  const auto* s = as_node(node_).as_string();
  return s ? &s->get() : nullptr;
}

std::optional<std::int64_t> TomlValue::integer() const {
  const auto* i = as_node(node_).as_integer();
  if (!i) return std::nullopt;
  return i->get();
}

std::optional<bool> TomlValue::boolean() const {
  const auto* b = as_node(node_).as_boolean();
  if (!b) return std::nullopt;
  return b->get();
}

std::optional<double> TomlValue::number() const { return as_node(node_).value<double>(); }

std::string TomlValue::type_name() const {
  switch (as_node(node_).type()) {
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

std::optional<TomlValue> TomlValue::get(std::string_view key) const {
  const auto* t = as_node(node_).as_table();
  if (!t) return std::nullopt;
  const auto* n = t->get(key);
  if (!n) return std::nullopt;
  return child(n);
}

std::vector<TomlValue::Entry> TomlValue::entries() const {
  std::vector<Entry> out;
  const auto* t = as_node(node_).as_table();
  if (!t) return out;
  for (auto&& [k, v] : *t) {
    const auto& b = k.source().begin;
    const bool placed = b.line != 0;
    out.push_back(Entry{std::string(k.str()), placed ? static_cast<int>(b.line) : line_,
                        placed ? static_cast<int>(b.column) : column_, child(&v)});
  }
  return out;
}

std::vector<TomlValue> TomlValue::elements() const {
  std::vector<TomlValue> out;
  const auto* a = as_node(node_).as_array();
  if (!a) return out;
  for (const auto& v : *a) out.push_back(child(&v));
  return out;
}

std::string TomlValue::where() const { return position(doc_->source, line_, column_); }

const std::string& TomlValue::source() const { return doc_->source; }

std::string TomlValue::Entry::key_where() const {
  return position(value.source(), key_line, key_column);
}

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

std::string nearest_word(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = 3;
  for (const auto& c : candidates) {
    const auto d = edit_distance(word, c);
    if (d < best_distance && d < c.size()) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace portier
