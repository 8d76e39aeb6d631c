#include "agent/feature_registry.h"

#include <optional>

#include "common/toml_table.h"

namespace portier::agent {

void FeatureRegistry::add(std::string name, Parser parse, Factory make) {
  kinds_.push_back(Kind{std::move(name), std::move(parse), std::move(make)});
}

void FeatureRegistry::add_absent(std::string name) {
  kinds_.push_back(Kind{std::move(name), nullptr, nullptr});
}

Result<std::vector<FeatureSpec>> FeatureRegistry::parse(
    TomlTable& root, const std::vector<TomlTable*>& opened) const {
  std::vector<FeatureSpec> out;
  for (const auto& kind : kinds_) {
    std::optional<TomlTable> own;
    TomlTable* table = nullptr;
    for (auto* t : opened) {
      if (t->table_name() == kind.name) table = t;
    }
    if (!table) {
      auto t = root.table(kind.name, "must be a [" + kind.name + "] table");
      if (!t) return std::unexpected(t.error());
      if (!*t) continue;
      own = std::move(*t);
      table = &*own;
    }
    if (!kind.parse) {
      // Keys the daemon reads itself may stay; anything for the feature may not.
      if (table->all_keys_known()) continue;
      return std::unexpected(
          table->error_here("feature '" + kind.name + "' is not built into this portierd"));
    }
    auto config = kind.parse(*table);
    if (!config) return std::unexpected(config.error());
    PORTIER_TRY(table->no_unknown_keys());
    out.push_back(FeatureSpec{kind.name, std::move(*config)});
  }
  return out;
}

std::unique_ptr<Feature> FeatureRegistry::build(const FeatureSpec& spec) const {
  for (const auto& k : kinds_) {
    if (k.name == spec.name && k.make) return k.make(spec.config);
  }
  return nullptr;
}

}  // namespace portier::agent
