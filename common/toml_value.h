// One value of a parsed TOML document (config or policy file), with the
// file, line and column it came from, so that every error can point at the
// value that is wrong. The TOML library stays behind this header: nothing
// that includes it sees toml++.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portier {

class TomlValue {
 public:
  struct Entry;

  // Parses `text`; a syntax error reads "<source>:<line>:<col>: <syntax_what>: <why>".
  // Returns the document's root table.
  static Result<TomlValue> parse(std::string_view text, const std::string& source,
                                 const std::string& syntax_what);

  bool is_table() const;
  bool is_array() const;
  bool is_array_of_tables() const;
  const std::string* string() const;  // null when not a string
  std::optional<std::int64_t> integer() const;
  std::optional<bool> boolean() const;
  std::optional<double> number() const;  // an integer or a float
  std::string type_name() const;         // "a string", "an integer", ... for errors

  // A table's value at `key`; nothing when absent (or this is no table).
  std::optional<TomlValue> get(std::string_view key) const;
  std::vector<Entry> entries() const;       // a table's keys, in key order
  std::vector<TomlValue> elements() const;  // an array's values

  // "<source>:<line>:<col>" of the value. A value the file does not spell
  // out (the implicit [a] of [a.b]) takes the position of what holds it.
  std::string where() const;
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& source() const;

 private:
  struct Document;
  TomlValue(std::shared_ptr<const Document> doc, const void* node, int line, int column);
  TomlValue child(const void* node) const;

  std::shared_ptr<const Document> doc_;
  const void* node_ = nullptr;  // a toml::node of doc_
  int line_ = 1, column_ = 1;
};

struct TomlValue::Entry {
  std::string key;
  int key_line = 1, key_column = 1;  // where the key is written
  TomlValue value;
  std::string key_where() const;
};

// How far apart two words are (Levenshtein): turns a typo into a suggestion.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word` when it is a plausible typo of it (fewer
// than 3 edits, and fewer than the candidate's length); "" when none is.
std::string nearest_word(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace portier
