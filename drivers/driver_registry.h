// The driver kinds portierd knows, by the name of their config table: each
// kind brings a parser for its table (beside the driver, e.g.
// drivers/pcsc/pcsc_config_parser.cc) and a factory. The daemon reads the
// config through the registry and builds drivers from what it returned,
// without including any driver's header.
//
// Two shapes of table:
//   [pcsc]                  one table enables one driver (add_table)
//   [[scanner]] type = ".." one device per entry, chosen by `type`; its `id`
//                           is checked here (add_device)
//
// Registration is explicit (register_builtin_drivers, builtin_drivers.cc):
// a static library's self-registering initialisers would be dropped by the
// linker.
#pragma once

#include <any>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "drivers/driver.h"

namespace portier {
class TomlTable;
}

namespace portier::drivers {

// One driver the config asks for.
struct DriverSpec {
  std::string kind;  // the kind's name ("serial_scanner", "pcsc", ...)
  std::any config;   // that kind's own config struct (SerialScannerConfig, PcscConfig, ...)
};

class DriverRegistry {
 public:
  // Reads one table (one [[table]] entry) into the kind's config struct;
  // unknown keys are reported by the registry after it returns.
  using Parser = std::function<Result<std::any>(TomlTable& table)>;
  using Factory = std::function<std::unique_ptr<Driver>(const std::any& config)>;

  // A driver enabled by the [table] table.
  void add_table(std::string table, std::string kind, Parser parse, Factory make);
  // A device of the [[table]] list whose `type` is `type`. A table's first
  // device type registered with `is_default` applies when `type` is absent.
  void add_device(std::string table, std::string type, std::string kind, Parser parse, Factory make,
                  bool is_default = false);

  // A Parser from a function returning the kind's config struct, and a
  // Factory that builds DriverT from that struct.
  template <class Config>
  static Parser parser(Result<Config> (*parse)(TomlTable&)) {
    return [parse](TomlTable& t) -> Result<std::any> {
      auto c = parse(t);
      if (!c) return std::unexpected(c.error());
      return std::any(std::move(*c));
    };
  }
  template <class DriverT, class Config>
  static Factory factory() {
    return [](const std::any& c) -> std::unique_ptr<Driver> {
      return std::make_unique<DriverT>(std::any_cast<const Config&>(c));
    };
  }

  // Reads every driver table of the config's top level (each counts as a
  // known key of `root`), tables in the order they were registered.
  Result<std::vector<DriverSpec>> parse(TomlTable& root) const;
  // Null when no kind of that name is registered.
  std::unique_ptr<Driver> build(const DriverSpec& spec) const;

 private:
  struct Kind {
    std::string table, type, kind;  // type: "" for a [table] kind
    Parser parse;
    Factory make;
  };
  struct Table {
    std::string name;
    bool devices = false;  // [[name]] of devices, by type
    std::string default_type;
  };
  Table& table_entry(const std::string& name, bool devices);
  Result<void> parse_devices(TomlTable& root, const Table& table, std::vector<std::string>& ids,
                             std::vector<DriverSpec>& out) const;

  std::vector<Kind> kinds_;
  std::vector<Table> tables_;
};

// Adds every driver kind built into this portierd.
void register_builtin_drivers(DriverRegistry& registry);

}  // namespace portier::drivers
