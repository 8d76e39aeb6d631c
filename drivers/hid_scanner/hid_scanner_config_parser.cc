#include "drivers/hid_scanner/hid_scanner_config_parser.h"

#include "common/toml_table.h"
#include "drivers/driver_registry.h"
#include "drivers/hid_scanner/hid_scanner_driver.h"

namespace portier::drivers {

Result<HidScannerConfig> parse_hid_scanner_config(TomlTable& t) {
  HidScannerConfig c;
  PORTIER_TRY(t.str("id", c.id));
  PORTIER_TRY(t.str("mode", c.mode));
  PORTIER_TRY(t.str("path", c.path));
  PORTIER_TRY(t.str("layout", c.layout));
  PORTIER_TRY(t.str("encoding", c.encoding));
  PORTIER_TRY(t.boolean("aim", c.aim));
  PORTIER_TRY(t.boolean("grab", c.grab));
  PORTIER_TRY(t.integer("max_frame", 1, 1 << 20, c.max_frame));
  PORTIER_TRY(t.integer("reopen_min_ms", 1, 60000, c.reopen_min_ms));
  PORTIER_TRY(t.integer("reopen_max_ms", 1, 600000, c.reopen_max_ms));
  std::uint16_t vendor = 0, product = 0;
  const bool has_vendor = t.has("vendor"), has_product = t.has("product");
  PORTIER_TRY(t.integer("vendor", 0, 0xffff, vendor));
  PORTIER_TRY(t.integer("product", 0, 0xffff, product));
  if (has_vendor) c.vendor = vendor;
  if (has_product) c.product = product;
  if (auto v = HidScannerDriver::validate(c); !v) return std::unexpected(t.located(v.error()));
  return c;
}

void register_hid_scanner(DriverRegistry& registry) {
  registry.add_device("scanner", "hid", "hid_scanner",
                      DriverRegistry::parser(parse_hid_scanner_config),
                      DriverRegistry::factory<HidScannerDriver, HidScannerConfig>());
}

}  // namespace portier::drivers
