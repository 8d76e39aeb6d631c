#include "pcsc/pcsc_api.h"

#include <dlfcn.h>

#include <type_traits>

namespace portier::drivers {

Result<PcscApi> load_pcsc_api(const std::string& soname) {
  constexpr const char* kWhere = "pcsc";
  void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    return fail(
        Errc::not_found, kWhere, "pcsc-lite",
        "cannot load " + soname + " (install libpcsclite1): " + (why ? why : "unknown reason"));
  }
  PcscApi api{};
  std::string missing;
  auto sym = [&](const char* name, auto& ptr) {
    ptr = reinterpret_cast<std::remove_reference_t<decltype(ptr)>>(dlsym(lib, name));
    if (!ptr) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  sym("SCardEstablishContext", api.SCardEstablishContext);
  sym("SCardReleaseContext", api.SCardReleaseContext);
  sym("SCardConnect", api.SCardConnect);
  sym("SCardReconnect", api.SCardReconnect);
  sym("SCardDisconnect", api.SCardDisconnect);
  sym("SCardBeginTransaction", api.SCardBeginTransaction);
  sym("SCardEndTransaction", api.SCardEndTransaction);
  sym("SCardStatus", api.SCardStatus);
  sym("SCardGetStatusChange", api.SCardGetStatusChange);
  sym("SCardTransmit", api.SCardTransmit);
  sym("SCardListReaders", api.SCardListReaders);
  sym("SCardCancel", api.SCardCancel);
  sym("g_rgSCardT0Pci", api.g_rgSCardT0Pci);
  sym("g_rgSCardT1Pci", api.g_rgSCardT1Pci);
  sym("g_rgSCardRawPci", api.g_rgSCardRawPci);
  if (!missing.empty()) {
    dlclose(lib);
    return fail(Errc::not_found, kWhere, "pcsc-lite", soname + " lacks " + missing);
  }
  return api;  // the library stays loaded: the table points into it
}

Result<const PcscApi*> pcsc_api() {
  static const Result<PcscApi> loaded = load_pcsc_api(kPcscLibrary);  // once, thread-safe
  if (!loaded) return std::unexpected(loaded.error());
  return &*loaded;
}

}  // namespace portier::drivers
