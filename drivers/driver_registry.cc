#include "drivers/driver_registry.h"

#include <algorithm>

#include "common/device_id.h"
#include "common/toml_table.h"

namespace portier::drivers {
namespace {

// "\"serial\", \"hid\" or \"simulated\""
std::string one_of(const std::vector<std::string>& types) {
  std::string out;
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (i > 0) out += i + 1 == types.size() ? " or " : ", ";
    out += "\"" + types[i] + "\"";
  }
  return out;
}

}  // namespace

DriverRegistry::Table& DriverRegistry::table_entry(const std::string& name, bool devices) {
  auto it =
      std::find_if(tables_.begin(), tables_.end(), [&](const Table& t) { return t.name == name; });
  if (it != tables_.end()) return *it;
  tables_.push_back(Table{name, devices, ""});
  return tables_.back();
}

void DriverRegistry::add_table(std::string table, std::string kind, Parser parse, Factory make) {
  table_entry(table, false);
  kinds_.push_back(Kind{std::move(table), "", std::move(kind), std::move(parse), std::move(make)});
}

void DriverRegistry::add_device(std::string table, std::string type, std::string kind, Parser parse,
                                Factory make, bool is_default) {
  auto& t = table_entry(table, true);
  if (is_default && t.default_type.empty()) t.default_type = type;
  kinds_.push_back(
      Kind{std::move(table), std::move(type), std::move(kind), std::move(parse), std::move(make)});
}

Result<void> DriverRegistry::parse_devices(TomlTable& root, const Table& table,
                                           std::vector<std::string>& ids,
                                           std::vector<DriverSpec>& out) const {
  auto entries = root.tables(table.name, "must be [[" + table.name + "]] tables");
  if (!entries) return std::unexpected(entries.error());
  std::vector<std::string> types;
  for (auto& k : kinds_) {
    if (k.table == table.name) types.push_back(k.type);
  }
  for (auto& t : *entries) {
    std::string type = table.default_type, id;
    if (auto r = t.str("type", type); !r) return r;
    if (auto r = t.str("id", id); !r) return r;
    if (!valid_device_id(id)) {
      return std::unexpected(t.error("id", "required: 1-64 characters of A-Z a-z 0-9 - _ ."));
    }
    if (id == "terminal") {
      return std::unexpected(t.error("id", "'terminal' is reserved for the terminal itself"));
    }
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
      return std::unexpected(t.error("id", "'" + id + "' is used twice"));
    }
    ids.push_back(id);
    auto kind = std::find_if(kinds_.begin(), kinds_.end(), [&](const Kind& k) {
      return k.table == table.name && k.type == type;
    });
    if (kind == kinds_.end()) return std::unexpected(t.error("type", "must be " + one_of(types)));
    auto config = kind->parse(t);
    if (!config) return std::unexpected(config.error());
    if (auto r = t.no_unknown_keys(); !r) return r;
    out.push_back(DriverSpec{kind->kind, std::move(*config)});
  }
  return {};
}

Result<std::vector<DriverSpec>> DriverRegistry::parse(TomlTable& root) const {
  std::vector<DriverSpec> out;
  std::vector<std::string> ids;  // device ids, unique across the [[...]] lists
  for (const auto& table : tables_) {
    if (table.devices) {
      if (auto r = parse_devices(root, table, ids, out); !r) return std::unexpected(r.error());
      continue;
    }
    auto t = root.table(table.name, "must be a [" + table.name + "] table");
    if (!t) return std::unexpected(t.error());
    if (!*t) continue;
    auto kind = std::find_if(kinds_.begin(), kinds_.end(),
                             [&](const Kind& k) { return k.table == table.name; });
    auto config = kind->parse(**t);
    if (!config) return std::unexpected(config.error());
    if (auto r = (*t)->no_unknown_keys(); !r) return std::unexpected(r.error());
    out.push_back(DriverSpec{kind->kind, std::move(*config)});
  }
  return out;
}

std::unique_ptr<Driver> DriverRegistry::build(const DriverSpec& spec) const {
  for (const auto& k : kinds_) {
    if (k.kind == spec.kind) return k.make(spec.config);
  }
  return nullptr;
}

}  // namespace portier::drivers
