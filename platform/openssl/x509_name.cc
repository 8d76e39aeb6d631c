// Distinguished names of certificates and requests: the three attributes
// Portier writes (CN, serialNumber, O) and reading one back as UTF-8.
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "platform/openssl/ossl.h"
#include "platform/openssl/x509_impl.h"

namespace portier::crypto::x509 {
namespace {

constexpr const char* kWhere = "crypto/x509";

}  // namespace

Result<X509_NAME*> make_name(const Subject& subject) {
  ERR_clear_error();
  if (subject.common_name.empty())
    return fail(Errc::invalid_argument, kWhere, "subject", "the common name is empty");
  std::unique_ptr<X509_NAME, decltype(&X509_NAME_free)> name(X509_NAME_new(), &X509_NAME_free);
  if (!name) return ossl::fail(Errc::internal, kWhere, "subject");
  struct Attr {
    int nid;
    const std::string* value;
    const char* label;
  };
  const Attr attrs[] = {{NID_commonName, &subject.common_name, "common name"},
                        {NID_serialNumber, &subject.serial_number, "serial number"},
                        {NID_organizationName, &subject.organization, "organization"}};
  for (const Attr& a : attrs) {
    if (a.value->empty()) continue;
    if (a.value->find('\0') != std::string::npos)
      return fail(Errc::invalid_argument, kWhere, std::string("subject ") + a.label,
                  "contains a NUL byte");
    // MBSTRING_UTF8: OpenSSL picks the attribute's string type and enforces
    // its upper bound (64 characters for CN and O, printable for
    // serialNumber).
    if (X509_NAME_add_entry_by_NID(name.get(), a.nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(a.value->data()),
                                   static_cast<int>(a.value->size()), -1, 0) != 1)
      return ossl::fail(Errc::invalid_argument, kWhere,
                        std::string("subject ") + a.label + " \"" + *a.value + "\"",
                        "does not fit the attribute");
  }
  return name.release();
}

std::string name_entry(const X509_NAME* name, int nid) {
  if (name == nullptr) return {};
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return {};
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) {
    ERR_clear_error();
    return {};
  }
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace portier::crypto::x509
