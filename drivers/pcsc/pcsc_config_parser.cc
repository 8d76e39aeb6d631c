#include "drivers/pcsc/pcsc_config_parser.h"

#include "common/toml_table.h"
#include "drivers/driver_registry.h"
#include "drivers/pcsc/pcsc_reader_driver.h"

namespace portier::drivers {

Result<PcscConfig> parse_pcsc_config(TomlTable& t) {
  PcscConfig c;
  PORTIER_TRY(t.str("id_prefix", c.id_prefix));
  PORTIER_TRY(t.strings("readers_allowed", c.readers_allowed));
  PORTIER_TRY(t.strings("contactless_readers", c.contactless_readers));
  PORTIER_TRY(t.integer("transaction_timeout_ms", 1, 600000, c.transaction_timeout_ms));
  PORTIER_TRY(t.integer("transaction_hold_ms", 0, 60000, c.transaction_hold_ms));
  PORTIER_TRY(t.integer("poll_ms", 1, 60000, c.poll_ms));
  PORTIER_TRY(t.boolean("allow_reader_commands", c.allow_reader_commands));
  if (auto pins = t.take("pinned")) {
    if (!pins->is_table()) {
      return std::unexpected(t.error("pinned", "must be a table id = \"reader name\""));
    }
    for (auto& e : pins->entries()) {
      const auto* name = e.value.string();
      if (!name) {
        return std::unexpected(Error{Errc::invalid_argument, e.value.where(),
                                     t.name("pinned") + "." + e.key, "must be a reader name"});
      }
      c.pinned[e.key] = *name;
    }
  }
  PORTIER_TRY(t.no_unknown_keys());
  if (auto v = PcscReaderDriver::validate(c); !v) return std::unexpected(t.located(v.error()));
  return c;
}

void register_pcsc(DriverRegistry& registry) {
  registry.add_table("pcsc", "pcsc", DriverRegistry::parser(parse_pcsc_config),
                     DriverRegistry::factory<PcscReaderDriver, PcscConfig>());
}

}  // namespace portier::drivers
