#include "drivers/simulated/simulated_config_parser.h"

#include "common/toml_table.h"
#include "drivers/driver_registry.h"
#include "drivers/simulated/simulated_scanner.h"

namespace portier::drivers {

Result<SimulatedScannerConfig> parse_simulated_scanner_config(TomlTable& t) {
  SimulatedScannerConfig c;
  PORTIER_TRY(t.str("id", c.id));
  PORTIER_TRY(t.integer("interval_ms", 1, 3600000, c.interval_ms));
  return c;
}

Result<SimulatedCardReaderConfig> parse_simulated_reader_config(TomlTable& t) {
  SimulatedCardReaderConfig c;
  PORTIER_TRY(t.str("id", c.id));
  return c;
}

void register_simulated_scanner(DriverRegistry& registry) {
  registry.add_device("scanner", "simulated", "simulated_scanner",
                      DriverRegistry::parser(parse_simulated_scanner_config),
                      DriverRegistry::factory<SimulatedScanner, SimulatedScannerConfig>());
}

void register_simulated_reader(DriverRegistry& registry) {
  registry.add_device("reader", "simulated", "simulated_card_reader",
                      DriverRegistry::parser(parse_simulated_reader_config),
                      DriverRegistry::factory<SimulatedCardReader, SimulatedCardReaderConfig>());
}

}  // namespace portier::drivers
