// The [[scanner]] type = "hid" entry of portierd's config: its parser and its
// place in the driver registry.
#pragma once

#include "common/result.h"
#include "drivers/hid_scanner/hid_scanner_config.h"

namespace portier {
class TomlTable;
}

namespace portier::drivers {

class DriverRegistry;

Result<HidScannerConfig> parse_hid_scanner_config(TomlTable& table);
void register_hid_scanner(DriverRegistry& registry);

}  // namespace portier::drivers
