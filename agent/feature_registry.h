// The agent features portierd knows, by the name of their config table
// ([health], ...): each brings a parser for its table (beside the feature,
// e.g. agent/health/health_config_parser.cc) and a factory. The daemon reads
// the config and builds features through it without naming any feature.
//
// A feature compiled out (CMake PORTIER_WITH_<NAME>=OFF) is registered as
// absent: a config that sets its table gets "feature '<name>' is not built
// into this portierd" at the table's line. Registration is explicit
// (register_builtin_features, builtin_features.cc), never through static
// initialisers that the linker would drop from a static library.
#pragma once

#include <any>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/feature.h"
#include "common/result.h"

namespace portier {
class TomlTable;
}

namespace portier::agent {

// One feature the config asks for.
struct FeatureSpec {
  std::string name;  // its table's name
  std::any config;   // the feature's own config struct
};

class FeatureRegistry {
 public:
  // Reads the feature's table into its config struct; unknown keys are
  // reported by the registry after it returns.
  using Parser = std::function<Result<std::any>(TomlTable& table)>;
  // Null when the config leaves the feature off.
  using Factory = std::function<std::unique_ptr<Feature>(const std::any& config)>;

  void add(std::string name, Parser parse, Factory make);
  void add_absent(std::string name);

  // Reads the table of every feature the config's top level has (each
  // counts as a known key of `root`). `opened` are tables the caller has
  // already read keys of (the health gate's [health] refuse_when_compromised):
  // the feature reads the rest of the same table.
  Result<std::vector<FeatureSpec>> parse(TomlTable& root,
                                         const std::vector<TomlTable*>& opened = {}) const;
  // Null when the config leaves it off (or no such feature is built).
  std::unique_ptr<Feature> build(const FeatureSpec& spec) const;

 private:
  struct Kind {
    std::string name;
    Parser parse;  // null: not built
    Factory make;
  };
  std::vector<Kind> kinds_;
};

// Adds every feature of this build (and the compiled-out ones as absent).
void register_builtin_features(FeatureRegistry& registry);

}  // namespace portier::agent
