// libusb-1.0, loaded when a USB driver is started: portierd maps libusb
// (and the libudev it depends on) only on terminals whose config has a USB
// driver, not at start.
#pragma once

#include <libusb.h>

#include <string>

#include "common/result.h"

namespace portier::drivers {

// The libusb-1.0 functions the USB driver calls, by their own names.
struct LibusbApi {
  decltype(&::libusb_init) libusb_init;
  decltype(&::libusb_exit) libusb_exit;
  decltype(&::libusb_set_option) libusb_set_option;
  decltype(&::libusb_error_name) libusb_error_name;
  decltype(&::libusb_get_device_list) libusb_get_device_list;
  decltype(&::libusb_free_device_list) libusb_free_device_list;
  decltype(&::libusb_get_bus_number) libusb_get_bus_number;
  decltype(&::libusb_get_device_address) libusb_get_device_address;
  decltype(&::libusb_ref_device) libusb_ref_device;
  decltype(&::libusb_unref_device) libusb_unref_device;
  decltype(&::libusb_get_device_descriptor) libusb_get_device_descriptor;
  decltype(&::libusb_open) libusb_open;
  decltype(&::libusb_close) libusb_close;
  decltype(&::libusb_claim_interface) libusb_claim_interface;
  decltype(&::libusb_release_interface) libusb_release_interface;
  decltype(&::libusb_control_transfer) libusb_control_transfer;
  decltype(&::libusb_bulk_transfer) libusb_bulk_transfer;
};

// The soname of Debian 12's libusb-1.0-0.
inline constexpr char kLibusbLibrary[] = "libusb-1.0.so.0";

// Loads kLibusbLibrary once (thread-safe) and keeps it loaded. not_found
// with the loader's reason and the package to install when it is missing,
// or naming the symbols it lacks.
Result<const LibusbApi*> libusb_api();

// Loads `soname` (dlopen, RTLD_NOW | RTLD_LOCAL) and resolves the table;
// libusb_api() is this once with kLibusbLibrary. Tests pass other names.
Result<LibusbApi> load_libusb_api(const std::string& soname);

}  // namespace portier::drivers
