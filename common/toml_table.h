// Reads one table of a config file key by key: typed values with ranges,
// sub-tables, arrays of tables, and at the end the keys nobody asked for.
// Every error reads "<source>:<line>:<col>: <table>.<key>: <reason>" at the
// position of the value that is wrong (the table's header when the key is
// absent); an unknown key names the nearest known one ("did you mean
// 'baud'?"). The daemon config, each driver's and each feature's parser use
// it (the policy parser uses the TomlValue underneath with its own wording).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/result.h"
#include "common/toml_value.h"

namespace portier {

class TomlTable {
 public:
  // `name` is how errors call the table ("scanner[1]", "health"; "" for the
  // file's top level, whose keys are named bare).
  TomlTable(TomlValue table, std::string name);

  const TomlValue& value() const { return t_; }
  const std::string& source() const { return t_.source(); }
  const std::string& table_name() const { return name_; }
  std::string name(std::string_view key) const;  // "scanner[1].baud"
  bool has(std::string_view key) const { return t_.get(key).has_value(); }

  // Typed reads. An absent key leaves `out` as it is; read or not, the key
  // counts as known from then on.
  Result<void> str(std::string_view key, std::string& out);
  Result<void> boolean(std::string_view key, bool& out);
  Result<void> strings(std::string_view key, std::vector<std::string>& out);
  Result<void> number(std::string_view key, double lo, double hi, double& out);
  template <class T>
  Result<void> integer(std::string_view key, std::int64_t lo, std::int64_t hi, T& out) {
    std::optional<std::int64_t> v;
    if (auto r = integer64(key, lo, hi, v); !r) return r;
    if (v) out = static_cast<T>(*v);
    return {};
  }
  // The raw value of `key`, which counts as known.
  std::optional<TomlValue> take(std::string_view key);
  // A sub-table ([usb]) or its absence; `must_be` is the error when the key
  // holds something else ("must be a [usb] table").
  Result<std::optional<TomlTable>> table(std::string_view key, const std::string& must_be);
  // The tables of [[key]] (none when absent), named "<key>[1]", "<key>[2]"...
  Result<std::vector<TomlTable>> tables(std::string_view key, const std::string& must_be);

  // An error at `key`'s value (the table's header when absent), named `name(key)`.
  Error error(std::string_view key, std::string why) const;
  // An error at this table's header, named after the table.
  Error error_here(std::string why) const;
  // An error from a config's validate() names the key first ("baud 12345:
  // not a standard rate"): placed at that key's value as
  // "<table>.<key>: baud 12345: not a standard rate", or at the table.
  Error located(const Error& e) const;

  // The first key in the file that no read above asked for, with the
  // nearest known key as a suggestion.
  Result<void> no_unknown_keys() const;
  // Whether any key was not asked for.
  bool all_keys_known() const;

 private:
  Result<void> integer64(std::string_view key, std::int64_t lo, std::int64_t hi,
                         std::optional<std::int64_t>& out);
  std::optional<TomlValue> read(std::string_view key);

  TomlValue t_;
  std::string name_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace portier
