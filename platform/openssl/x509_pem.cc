// PEM blocks of certificates and requests: found in untrusted text, with the
// size of the text and of each block bounded before anything is decoded.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "platform/openssl/ossl.h"
#include "platform/openssl/x509_impl.h"

namespace portier::crypto::x509 {
namespace {

constexpr const char* kWhere = "crypto/x509";

struct PemParts {
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  ~PemParts() {
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
  }
};

}  // namespace

Result<std::vector<Bytes>> pem_blocks(std::string_view pem, std::string_view label,
                                      const char* what) {
  ERR_clear_error();
  if (pem.size() > kMaxPem)
    return fail(Errc::invalid_argument, kWhere, what,
                "PEM text of " + std::to_string(pem.size()) + " bytes, over the limit of " +
                    std::to_string(kMaxPem));
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return ossl::fail(Errc::internal, kWhere, what);
  std::vector<Bytes> out;
  for (int index = 0;; ++index) {
    PemParts p;
    long len = 0;
    if (PEM_read_bio(bio.get(), &p.name, &p.header, &p.data, &len) != 1) {
      const unsigned long e = ERR_peek_last_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();  // the end of the text: no further block
        break;
      }
      return fail(Errc::invalid_argument, kWhere, what,
                  "PEM block " + std::to_string(index + 1) +
                      " cannot be decoded: " + ossl::errors("bad base64 or no END line"));
    }
    if (label != p.name) continue;
    if (len <= 0 || static_cast<std::size_t>(len) > kMaxDer)
      return fail(Errc::invalid_argument, kWhere, what,
                  std::string(label) + " block of " + std::to_string(len) +
                      " bytes, over the limit of " + std::to_string(kMaxDer));
    out.emplace_back(p.data, p.data + len);
  }
  return out;
}

Result<std::string> pem_block(ByteView der, std::string_view label) {
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  const std::string name(label);
  if (!bio ||
      PEM_write_bio(bio.get(), name.c_str(), "", der.data(), static_cast<long>(der.size())) <= 0)
    return ossl::fail(Errc::internal, kWhere, name + " PEM");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n > 0 ? n : 0));
}

}  // namespace portier::crypto::x509
