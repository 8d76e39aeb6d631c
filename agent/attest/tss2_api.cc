#include "agent/attest/tss2_api.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

namespace portier::attest {
namespace {

constexpr const char* kWhere = "attest/tpm";

Result<void> load(Tss2Api& api) {
  // The sonames of Debian 12's libtss2-* 3.2 packages.
  void* tctildr = dlopen("libtss2-tctildr.so.0", RTLD_NOW | RTLD_LOCAL);
  void* rc = dlopen("libtss2-rc.so.0", RTLD_NOW | RTLD_LOCAL);
  void* esys = dlopen("libtss2-esys.so.0", RTLD_NOW | RTLD_LOCAL);
  void* mu = dlopen("libtss2-mu.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!tctildr || !rc || !esys || !mu) {
    const char* why = dlerror();
    return fail(Errc::not_found, kWhere, "tpm2-tss",
                std::string("cannot load it (install libtss2-esys-3.0.2-0, libtss2-mu0, "
                            "libtss2-rc0, libtss2-tctildr0): ") +
                    (why ? why : "unknown reason"));
  }
  std::string missing;
  auto sym = [&](void* lib, const char* name, auto& fn) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
    if (!fn) missing += (missing.empty() ? "" : ", ") + std::string(name);
  };
  sym(tctildr, "Tss2_TctiLdr_Initialize", api.Tss2_TctiLdr_Initialize);
  sym(tctildr, "Tss2_TctiLdr_Finalize", api.Tss2_TctiLdr_Finalize);
  sym(rc, "Tss2_RC_Decode", api.Tss2_RC_Decode);
  sym(esys, "Esys_Initialize", api.Esys_Initialize);
  sym(esys, "Esys_Finalize", api.Esys_Finalize);
  sym(esys, "Esys_Free", api.Esys_Free);
  sym(esys, "Esys_GetCapability", api.Esys_GetCapability);
  sym(esys, "Esys_PCR_Read", api.Esys_PCR_Read);
  sym(esys, "Esys_PCR_Extend", api.Esys_PCR_Extend);
  sym(esys, "Esys_CreatePrimary", api.Esys_CreatePrimary);
  sym(esys, "Esys_Quote", api.Esys_Quote);
  sym(esys, "Esys_FlushContext", api.Esys_FlushContext);
  sym(mu, "Tss2_MU_TPM2B_PUBLIC_Marshal", api.Tss2_MU_TPM2B_PUBLIC_Marshal);
  sym(mu, "Tss2_MU_TPMT_SIGNATURE_Marshal", api.Tss2_MU_TPMT_SIGNATURE_Marshal);
  sym(mu, "Tss2_MU_TPMT_SIGNATURE_Unmarshal", api.Tss2_MU_TPMT_SIGNATURE_Unmarshal);
  sym(mu, "Tss2_MU_TPMS_ATTEST_Unmarshal", api.Tss2_MU_TPMS_ATTEST_Unmarshal);
  if (!missing.empty()) {
    return fail(Errc::not_found, kWhere, "tpm2-tss", "the installed version lacks " + missing);
  }
  return {};
}

}  // namespace

Result<const Tss2Api*> tss2_api() {
  static Tss2Api api{};
  static Result<void> loaded = load(api);  // once; C++ makes it thread-safe
  if (!loaded) return std::unexpected(loaded.error());
  return &api;
}

}  // namespace portier::attest
