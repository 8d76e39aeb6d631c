// tpm2-tss, loaded when a TPM is first used: portierd maps the TPM stack
// (libtss2-esys, -sys, -mu, -rc, -tctildr: ~400 kB resident) only on
// terminals whose health monitor checks boot integrity, not at start.
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "common/result.h"

namespace portier::attest {

// The tpm2-tss functions Portier calls, by their own names.
struct Tss2Api {
  decltype(&::Tss2_TctiLdr_Initialize) Tss2_TctiLdr_Initialize;
  decltype(&::Tss2_TctiLdr_Finalize) Tss2_TctiLdr_Finalize;
  decltype(&::Tss2_RC_Decode) Tss2_RC_Decode;
  decltype(&::Esys_Initialize) Esys_Initialize;
  decltype(&::Esys_Finalize) Esys_Finalize;
  decltype(&::Esys_Free) Esys_Free;
  decltype(&::Esys_GetCapability) Esys_GetCapability;
  decltype(&::Esys_PCR_Read) Esys_PCR_Read;
  decltype(&::Esys_PCR_Extend) Esys_PCR_Extend;
  decltype(&::Esys_CreatePrimary) Esys_CreatePrimary;
  decltype(&::Esys_Quote) Esys_Quote;
  decltype(&::Esys_FlushContext) Esys_FlushContext;
  decltype(&::Tss2_MU_TPM2B_PUBLIC_Marshal) Tss2_MU_TPM2B_PUBLIC_Marshal;
  decltype(&::Tss2_MU_TPMT_SIGNATURE_Marshal) Tss2_MU_TPMT_SIGNATURE_Marshal;
  decltype(&::Tss2_MU_TPMT_SIGNATURE_Unmarshal) Tss2_MU_TPMT_SIGNATURE_Unmarshal;
  decltype(&::Tss2_MU_TPMS_ATTEST_Unmarshal) Tss2_MU_TPMS_ATTEST_Unmarshal;
};

// Loads the libraries once (thread-safe) and stays loaded; not_found with
// the loader's reason when tpm2-tss is not installed.
Result<const Tss2Api*> tss2_api();

}  // namespace portier::attest
