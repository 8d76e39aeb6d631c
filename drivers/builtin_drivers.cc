// The driver kinds built into portierd, listed explicitly: self-registering
// static initialisers in the drivers' static libraries would be dropped by
// the linker. The order is the order their config tables are read.
#include "drivers/bluetooth/bluetooth_config_parser.h"
#include "drivers/driver_registry.h"
#include "drivers/hid_scanner/hid_scanner_config_parser.h"
#include "drivers/pcsc/pcsc_config_parser.h"
#include "drivers/serial_scanner/serial_scanner_config_parser.h"
#include "drivers/simulated/simulated_config_parser.h"
#include "drivers/usb/usb_config_parser.h"

namespace portier::drivers {

void register_builtin_drivers(DriverRegistry& registry) {
  // [[scanner]]: "serial" (the default type), "hid", "simulated"
  register_serial_scanner(registry);
  register_hid_scanner(registry);
  register_simulated_scanner(registry);
  // [[reader]]
  register_simulated_reader(registry);
  // [usb], [bluetooth], [pcsc]
  usb::register_usb(registry);
  register_bluetooth(registry);
  register_pcsc(registry);
}

}  // namespace portier::drivers
