#include "drivers/usb/usb_config_parser.h"

#include "common/toml_table.h"
#include "drivers/driver_registry.h"
#include "drivers/usb/usb_driver.h"

namespace portier::drivers::usb {

Result<UsbConfig> parse_usb_config(TomlTable& t) {
  UsbConfig c;
  PORTIER_TRY(t.str("sysfs_root", c.sysfs_root));
  PORTIER_TRY(t.str("uevent_source", c.uevent_source));
  PORTIER_TRY(t.str("id_prefix", c.id_prefix));
  PORTIER_TRY(t.strings("allowed", c.allowed));
  PORTIER_TRY(t.boolean("block_unknown", c.block_unknown));
  PORTIER_TRY(t.boolean("allow_hubs", c.allow_hubs));
  auto pins = t.tables("pinned", "must be [[usb.pinned]] tables");
  if (!pins) return std::unexpected(pins.error());
  for (auto& p : *pins) {
    UsbConfig::Pin pin;
    PORTIER_TRY(p.str("id", pin.id));
    PORTIER_TRY(p.str("identity", pin.identity));
    PORTIER_TRY(p.str("port", pin.port));
    PORTIER_TRY(p.no_unknown_keys());
    c.pinned.push_back(pin);
  }
  PORTIER_TRY(t.no_unknown_keys());
  if (auto v = UsbDriver::validate(c); !v) return std::unexpected(t.located(v.error()));
  return c;
}

void register_usb(DriverRegistry& registry) {
  registry.add_table("usb", "usb", DriverRegistry::parser(parse_usb_config),
                     [](const std::any& c) -> std::unique_ptr<Driver> {
                       return std::make_unique<UsbDriver>(std::any_cast<const UsbConfig&>(c));
                     });
}

}  // namespace portier::drivers::usb
