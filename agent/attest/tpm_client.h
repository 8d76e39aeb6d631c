// TPM 2.0 access through tpm2-tss ESAPI: PCR read, PCR extend (tests),
// attestation key + quote, and a quote verifier (common/crypto/).
//
// TCTI: any string Tss2_TctiLdr_Initialize accepts, e.g.
//   "device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321", "mssim:…".
//
// Timeouts. The socket TCTIs (swtpm, mssim) support neither a receive
// timeout nor poll handles (tpm2-tss 3.2 returns NOT_IMPLEMENTED), so every
// operation runs on its own worker thread which owns its own TCTI + ESYS
// context (created, used and finalized there). The caller waits on a
// condition variable until the deadline; on expiry it returns
// Errc::unavailable ("TPM did not answer within N ms") and detaches the
// worker, which keeps only shared state alive and cleans up by itself when
// the TPM answers or the connection dies (kill of swtpm, kernel TPM driver
// timeout for /dev/tpmrm0). Workers block SIGPIPE so a dead peer cannot kill
// the daemon. At most kMaxAbandonedCalls detached workers may be alive per
// client: beyond that, calls fail at once ("TPM still busy") rather than pile
// up threads.
//
// Errors: Errc::not_found when the TCTI cannot be opened (no TPM, nothing on
// the port) — the caller reports "degraded: no TPM"; Errc::unavailable on
// timeout; Errc::io for a TPM response code (decoded with Tss2_RC_Decode).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "agent/attest/digest.h"
#include "common/result.h"

namespace portier::attest {

struct TpmConfig {
  std::string tcti = "device:/dev/tpmrm0";
  std::chrono::milliseconds timeout{5000};  // per operation (connect + all commands)
};

struct PcrRead {
  PcrValues values;                         // bank → index → value
  std::vector<std::uint16_t> absent_banks;  // requested banks the TPM has not allocated
};

// A TPM2_Quote made with a transient restricted ECC P-256 ECDSA/SHA-256
// primary key under the owner hierarchy. The primary is derived from the
// owner seed and a fixed template, so the same TPM gives the same AK until
// the owner hierarchy is cleared (the management plane enrols `ak_point`).
struct Quote {
  Bytes attest;                     // TPMS_ATTEST as marshalled by the TPM (what was signed)
  Bytes signature;                  // TPMT_SIGNATURE, marshalled (ECDSA r, s)
  Bytes ak_public;                  // TPM2B_PUBLIC of the AK, marshalled
  Bytes ak_point;                   // uncompressed EC point 04 || X || Y (P-256)
  std::uint16_t bank = 0;           // TPM_ALG_ID of the quoted bank
  std::vector<std::uint32_t> pcrs;  // quoted PCR indices, ascending
};

inline constexpr int kMaxAbandonedCalls = 2;

class TpmClient {
 public:
  explicit TpmClient(TpmConfig cfg);
  const TpmConfig& config() const { return cfg_; }

  // Opens the TCTI and asks for TPM_PT_MANUFACTURER: is a TPM there and answering?
  Result<std::string> probe();
  // Reads `pcrs` (0..23) of each bank (kAlgSha1, kAlgSha256, …). A bank the
  // TPM does not have is listed in absent_banks, not an error.
  Result<PcrRead> read_pcrs(std::span<const std::uint16_t> banks,
                            std::span<const std::uint32_t> pcrs);
  // Extends `pcr` with one digest per bank (bank → digest). For tests and
  // provisioning tools, never called by the health check.
  Result<void> extend(std::uint32_t pcr, const std::map<std::uint16_t, Bytes>& digests);
  // Creates the AK and quotes `pcrs` of `bank` over `nonce` (≤ 64 bytes).
  Result<Quote> quote(std::span<const std::uint8_t> nonce, std::uint16_t bank,
                      std::span<const std::uint32_t> pcrs);

  int abandoned_calls() const { return abandoned_->load(); }

 private:
  TpmConfig cfg_;
  std::shared_ptr<std::atomic<int>> abandoned_ = std::make_shared<std::atomic<int>>(0);
};

// Verifies a quote: the signature over `attest` with `ak_point` (ECDSA P-256,
// SHA-256), attest magic and type, extraData == nonce, the PCR selection
// equals q.bank/q.pcrs, and the PCR digest equals SHA-256 of the expected
// values of those PCRs concatenated in ascending order. The AK itself must be
// trusted by the caller (enrolled `ak_point`): pass it separately so a quote
// cannot bring its own key.
Result<void> verify_quote(const Quote& q, std::span<const std::uint8_t> ak_point,
                          std::span<const std::uint8_t> nonce, const PcrValues& expected);

}  // namespace portier::attest
