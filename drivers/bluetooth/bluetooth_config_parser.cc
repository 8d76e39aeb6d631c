#include "drivers/bluetooth/bluetooth_config_parser.h"

#include "common/toml_table.h"
#include "drivers/bluetooth/bluetooth_driver.h"
#include "drivers/driver_registry.h"

namespace portier::drivers {

Result<BluetoothConfig> parse_bluetooth_config(TomlTable& t) {
  BluetoothConfig c;
  PORTIER_TRY(t.str("bus", c.bus));
  PORTIER_TRY(t.str("id_prefix", c.id_prefix));
  PORTIER_TRY(t.strings("allowed_addresses", c.allowed_addresses));
  PORTIER_TRY(t.strings("allowed_classes", c.allowed_classes));
  PORTIER_TRY(t.integer("call_timeout_ms", 1, 600000, c.call_timeout_ms));
  PORTIER_TRY(t.boolean("pairing_agent", c.pairing_agent));
  PORTIER_TRY(t.no_unknown_keys());
  if (auto v = BluetoothDriver::validate(c); !v) return std::unexpected(t.located(v.error()));
  return c;
}

void register_bluetooth(DriverRegistry& registry) {
  registry.add_table("bluetooth", "bluetooth", DriverRegistry::parser(parse_bluetooth_config),
                     DriverRegistry::factory<BluetoothDriver, BluetoothConfig>());
}

}  // namespace portier::drivers
