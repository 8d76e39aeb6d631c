// The [pcsc] table of portierd's config: its parser and its place in the
// driver registry.
#pragma once

#include "common/result.h"
#include "drivers/pcsc/pcsc_config.h"

namespace portier {
class TomlTable;
}

namespace portier::drivers {

class DriverRegistry;

Result<PcscConfig> parse_pcsc_config(TomlTable& table);
void register_pcsc(DriverRegistry& registry);

}  // namespace portier::drivers
