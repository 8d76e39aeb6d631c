// The simulated devices of portierd's config, [[scanner]] type = "simulated"
// and [[reader]] type = "simulated": their parsers and their place in the
// driver registry.
#pragma once

#include "common/result.h"
#include "drivers/serial_scanner/scanner_config.h"
#include "drivers/simulated/simulated_card_reader.h"

namespace portier {
class TomlTable;
}

namespace portier::drivers {

class DriverRegistry;

Result<SimulatedScannerConfig> parse_simulated_scanner_config(TomlTable& table);
Result<SimulatedCardReaderConfig> parse_simulated_reader_config(TomlTable& table);
void register_simulated_scanner(DriverRegistry& registry);
void register_simulated_reader(DriverRegistry& registry);

}  // namespace portier::drivers
