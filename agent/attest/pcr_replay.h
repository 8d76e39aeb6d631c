// Replay of measurement logs into the PCR values they imply.
//
// Firmware log (TCG): per bank the log declares, every PCR starts at zeros
// (PCR 17..22, the DRTM PCRs, at all-ones, as the PC Client TPM resets them),
// PCR 0 starts at 0…0L when a StartupLocality EV_NO_ACTION event gives
// locality L; each event other than EV_NO_ACTION extends its PCR:
// PCR = H(PCR || digest of that bank).
//
// IMA log: entries extend their PCR (normally 10) from zeros.
//  * sha1 bank: with the template hash printed in the log; a violation entry
//    (template hash all zeros) extends 20 bytes of 0xff (kernel convention).
//  * sha256 bank, ImaSha256Mode::template_data (kernels ≥ 5.1 with multi-bank
//    support): the kernel hashes the template data with each bank's
//    algorithm. We rebuild the template data from the log line:
//      ima-ng: u32le(len d) d u32le(len n) n, d = "<alg>:\0" + file digest,
//              n = filename + "\0"
//      ima:    file digest (20 bytes) + filename zero-padded to 256 bytes
//    and extend SHA-256 of it; violations extend 32 bytes of 0xff. Other
//    templates (ima-sig, …) cannot be rebuilt: the sha256 bank is then not
//    replayed (reported in `skipped`).
//  * ImaSha256Mode::padded_sha1 (older kernels): the sha256 bank is extended
//    with the sha1 template hash zero-padded to 32 bytes.
// For ima and ima-ng lines the sha1 template hash is also recomputed from the
// rebuilt template data: a line whose fields were edited no longer matches
// its template hash and the replay fails naming the line.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/attest/digest.h"
#include "agent/attest/ima_log.h"
#include "agent/attest/tcg_event_log.h"
#include "common/result.h"

namespace portier::attest {

struct TcgReplay {
  PcrValues pcrs;                                             // banks the log declares, PCR 0..23
  std::map<std::uint16_t, std::set<std::uint32_t>> extended;  // PCRs at least one event extended
  std::size_t events_replayed = 0;
};

Result<TcgReplay> replay_tcg_event_log(const TcgEventLog& log);

enum class ImaSha256Mode { template_data, padded_sha1 };

struct ImaReplay {
  PcrValues pcrs;                    // the PCRs IMA extended (normally only 10), per bank replayed
  std::vector<std::string> skipped;  // person-readable: banks that could not be replayed
  // When a target was given: per bank and PCR, the number of entries after
  // which the replayed value equalled the target (the log may have grown
  // after the PCR was read), absent if no prefix matched.
  std::map<std::uint16_t, std::map<std::uint32_t, std::size_t>> matched_prefix;
  std::size_t entries = 0;
};

Result<ImaReplay> replay_ima_log(const std::vector<ImaEntry>& entries,
                                 ImaSha256Mode mode = ImaSha256Mode::template_data,
                                 const PcrValues* target = nullptr);

// The IMA template data of an ima / ima-ng entry (see above); empty for other templates.
Bytes ima_template_data(const ImaEntry& e);

}  // namespace portier::attest
