#include "usb/libusb_api.h"

#include <dlfcn.h>

#include <type_traits>

namespace portier::drivers {

Result<LibusbApi> load_libusb_api(const std::string& soname) {
  constexpr const char* kWhere = "usb";
  void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    return fail(
        Errc::not_found, kWhere, "libusb-1.0",
        "cannot load " + soname + " (install libusb-1.0-0): " + (why ? why : "unknown reason"));
  }
  LibusbApi api{};
  std::string missing;
  auto sym = [&](const char* name, auto& fn) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  sym("libusb_init", api.libusb_init);
  sym("libusb_exit", api.libusb_exit);
  sym("libusb_set_option", api.libusb_set_option);
  sym("libusb_error_name", api.libusb_error_name);
  sym("libusb_get_device_list", api.libusb_get_device_list);
  sym("libusb_free_device_list", api.libusb_free_device_list);
  sym("libusb_get_bus_number", api.libusb_get_bus_number);
  sym("libusb_get_device_address", api.libusb_get_device_address);
  sym("libusb_ref_device", api.libusb_ref_device);
  sym("libusb_unref_device", api.libusb_unref_device);
  sym("libusb_get_device_descriptor", api.libusb_get_device_descriptor);
  sym("libusb_open", api.libusb_open);
  sym("libusb_close", api.libusb_close);
  sym("libusb_claim_interface", api.libusb_claim_interface);
  sym("libusb_release_interface", api.libusb_release_interface);
  sym("libusb_control_transfer", api.libusb_control_transfer);
  sym("libusb_bulk_transfer", api.libusb_bulk_transfer);
  if (!missing.empty()) {
    dlclose(lib);
    return fail(Errc::not_found, kWhere, "libusb-1.0", soname + " lacks " + missing);
  }
  return api;  // the library stays loaded: the table points into it
}

Result<const LibusbApi*> libusb_api() {
  static const Result<LibusbApi> loaded = load_libusb_api(kLibusbLibrary);  // once, thread-safe
  if (!loaded) return std::unexpected(loaded.error());
  return &*loaded;
}

}  // namespace portier::drivers
