#include "agent/identity/enrolment_proof.h"

#include <string>

#include "common/crypto/hmac.h"

namespace portier::identity {

Result<crypto::Bytes> enrolment_proof(crypto::ByteView secret, std::string_view terminal_id,
                                      std::string_view serial, crypto::ByteView csr_der) {
  if (secret.size() < kMinEnrolmentSecret) {
    return fail(Errc::invalid_argument, "enrolment secret", "too short",
                std::to_string(secret.size()) + " bytes, at least " +
                    std::to_string(kMinEnrolmentSecret) + " are needed");
  }
  std::string data("portier/v1 enrol\0", 17);
  data.append(terminal_id);
  data.push_back('\0');
  data.append(serial);
  data.push_back('\0');
  data.append(reinterpret_cast<const char*>(csr_der.data()), csr_der.size());
  return crypto::hmac(crypto::DigestAlgo::sha256, secret, crypto::byte_view(data));
}

}  // namespace portier::identity
