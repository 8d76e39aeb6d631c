// The enrolment CSR (PKCS#10) for the device key, whatever holds it: a key
// in memory goes through crypto::CertificateRequest::create; a key in a
// PKCS#11 token (ECDSA P-256 or Ed25519) gets its request encoded here and
// signed through the Signer, so the private key never leaves the token.
// Either way the request is parsed back and its self-signature checked
// before it is returned.
#pragma once

#include "common/crypto/signer.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::identity {

// Subject: CN = the terminal id, serialNumber = the hardware serial (the
// characters of an X.520 PrintableString only), O when given.
Result<crypto::CertificateRequest> make_csr(const crypto::Signer& signer,
                                            const crypto::Subject& subject);

}  // namespace portier::identity
