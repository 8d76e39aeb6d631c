// The [[scanner]] type = "serial" entry of portierd's config: its parser
// and its place in the driver registry.
#pragma once

#include "common/result.h"
#include "drivers/serial_scanner/scanner_config.h"

namespace portier {
class TomlTable;
}

namespace portier::drivers {

class DriverRegistry;

Result<SerialScannerConfig> parse_serial_scanner_config(TomlTable& table);
void register_serial_scanner(DriverRegistry& registry);

}  // namespace portier::drivers
