// The [usb] table of portierd's config (with its [[usb.pinned]] devices):
// its parser and its place in the driver registry.
#pragma once

#include "common/result.h"
#include "drivers/usb/usb_config.h"

namespace portier {
class TomlTable;
}

namespace portier::drivers {
class DriverRegistry;
}

namespace portier::drivers::usb {

Result<UsbConfig> parse_usb_config(TomlTable& table);
void register_usb(DriverRegistry& registry);

}  // namespace portier::drivers::usb
