#include "drivers/serial_scanner/serial_scanner_config_parser.h"

#include "common/toml_table.h"
#include "drivers/driver_registry.h"
#include "drivers/serial_scanner/serial_scanner.h"

namespace portier::drivers {

Result<SerialScannerConfig> parse_serial_scanner_config(TomlTable& t) {
  SerialScannerConfig c;
  PORTIER_TRY(t.str("id", c.id));
  PORTIER_TRY(t.str("path", c.path));
  PORTIER_TRY(t.integer("baud", 50, 4000000, c.baud));
  std::string suffix = "CR", encoding = "auto";
  PORTIER_TRY(t.str("suffix", suffix));
  PORTIER_TRY(t.str("prefix", c.prefix));
  PORTIER_TRY(t.boolean("aim", c.aim));
  PORTIER_TRY(t.str("encoding", encoding));
  PORTIER_TRY(t.integer("max_frame", 16, 1 << 20, c.max_frame));
  PORTIER_TRY(t.integer("reopen_min_ms", 10, 60000, c.reopen_min_ms));
  PORTIER_TRY(t.integer("reopen_max_ms", 10, 600000, c.reopen_max_ms));
  if (suffix == "CR") {
    c.suffix = FrameSuffix::cr;
  } else if (suffix == "LF") {
    c.suffix = FrameSuffix::lf;
  } else if (suffix == "CRLF") {
    c.suffix = FrameSuffix::crlf;
  } else {
    return std::unexpected(t.error("suffix", "must be \"CR\", \"LF\" or \"CRLF\""));
  }
  if (encoding == "auto") {
    c.encoding = TextEncoding::automatic;
  } else if (encoding == "utf-8") {
    c.encoding = TextEncoding::utf8;
  } else if (encoding == "gb18030") {
    c.encoding = TextEncoding::gb18030;
  } else {
    return std::unexpected(t.error("encoding", "must be \"auto\", \"utf-8\" or \"gb18030\""));
  }
  if (c.path.empty() || c.path[0] != '/') {
    return std::unexpected(t.error("path", "an absolute device path is required"));
  }
  if (c.reopen_max_ms < c.reopen_min_ms) {
    return std::unexpected(t.error("reopen_max_ms", "must not be less than reopen_min_ms"));
  }
  if (auto v = SerialScanner::validate(c); !v) return std::unexpected(t.located(v.error()));
  return c;
}

void register_serial_scanner(DriverRegistry& registry) {
  registry.add_device("scanner", "serial", "serial_scanner",
                      DriverRegistry::parser(parse_serial_scanner_config),
                      DriverRegistry::factory<SerialScanner, SerialScannerConfig>(),
                      /*is_default=*/true);
}

}  // namespace portier::drivers
