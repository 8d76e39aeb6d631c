// The [bluetooth] table of portierd's config: its parser and its place in
// the driver registry.
#pragma once

#include "common/result.h"
#include "drivers/bluetooth/bluetooth_config.h"

namespace portier {
class TomlTable;
}

namespace portier::drivers {

class DriverRegistry;

Result<BluetoothConfig> parse_bluetooth_config(TomlTable& table);
void register_bluetooth(DriverRegistry& registry);

}  // namespace portier::drivers
