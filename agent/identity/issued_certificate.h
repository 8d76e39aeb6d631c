// What the terminal checks of a certificate the fleet gives it, before it
// is installed (REQ-36: the terminal verifies what the backend sends, never
// only the transport): it is for the terminal's own key, its subject CN is
// the terminal id and its serialNumber the hardware serial, it chains to
// the fleet CA of the config with usage device, and it is valid now. The
// enrolment answer, a renewal and the InstallCertificate command all pass
// through here.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "agent/identity/certificate_store.h"
#include "common/crypto/keys.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::identity {

struct Expected {
  const crypto::PublicKey& key;
  std::string_view terminal_id;
  std::string_view serial;
  std::span<const crypto::Certificate> anchors;  // the fleet's CA
  crypto::TimePoint now;
};

// At most 8 chain certificates; permission_denied naming the mismatch.
Result<InstalledCertificate> check_issued_certificate(crypto::ByteView der,
                                                      std::span<const crypto::Bytes> chain_der,
                                                      const Expected& expected);

// The certificate's key is `key` (same type and bytes).
bool same_key(const crypto::PublicKey& a, const crypto::PublicKey& b);

}  // namespace portier::identity
