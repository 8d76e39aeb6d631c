#include "agent/identity/pkcs11_signer.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "agent/identity/private_file.h"
#include "common/crypto/digest.h"
#include "common/crypto/random.h"
#include "common/crypto/sign.h"

namespace portier::identity {

// The module, loaded and C_Initialize'd once per path for as long as a
// signer uses it; finalised and unloaded with the last one.
class Pkcs11Module {
 public:
  static Result<std::shared_ptr<Pkcs11Module>> load(const std::string& path);
  ~Pkcs11Module() {
    if (finalize_) f->C_Finalize(nullptr);
    ::dlclose(handle_);
  }
  CK_FUNCTION_LIST* f = nullptr;
  const std::string path;

  Pkcs11Module(std::string p, void* handle) : path(std::move(p)), handle_(handle) {}

 private:
  void* handle_;
  bool finalize_ = false;
};

namespace {

std::string rv_name(CK_RV rv) {
  switch (rv) {
    case CKR_OK:
      return "CKR_OK";
    case CKR_PIN_INCORRECT:
      return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED:
      return "CKR_PIN_LOCKED";
    case CKR_PIN_LEN_RANGE:
      return "CKR_PIN_LEN_RANGE";
    case CKR_ATTRIBUTE_SENSITIVE:
      return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_ATTRIBUTE_TYPE_INVALID:
      return "CKR_ATTRIBUTE_TYPE_INVALID";
    case CKR_ATTRIBUTE_VALUE_INVALID:
      return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_MECHANISM_INVALID:
      return "CKR_MECHANISM_INVALID";
    case CKR_KEY_TYPE_INCONSISTENT:
      return "CKR_KEY_TYPE_INCONSISTENT";
    case CKR_SESSION_HANDLE_INVALID:
      return "CKR_SESSION_HANDLE_INVALID";
    case CKR_USER_NOT_LOGGED_IN:
      return "CKR_USER_NOT_LOGGED_IN";
    case CKR_TOKEN_NOT_PRESENT:
      return "CKR_TOKEN_NOT_PRESENT";
    case CKR_TOKEN_WRITE_PROTECTED:
      return "CKR_TOKEN_WRITE_PROTECTED";
    case CKR_DEVICE_ERROR:
      return "CKR_DEVICE_ERROR";
    case CKR_DEVICE_REMOVED:
      return "CKR_DEVICE_REMOVED";
    case CKR_GENERAL_ERROR:
      return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED:
      return "CKR_FUNCTION_FAILED";
    case CKR_ARGUMENTS_BAD:
      return "CKR_ARGUMENTS_BAD";
    case CKR_CRYPTOKI_NOT_INITIALIZED:
      return "CKR_CRYPTOKI_NOT_INITIALIZED";
    case CKR_DOMAIN_PARAMS_INVALID:
      return "CKR_DOMAIN_PARAMS_INVALID";
    case CKR_TEMPLATE_INCONSISTENT:
      return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_TEMPLATE_INCOMPLETE:
      return "CKR_TEMPLATE_INCOMPLETE";
    default: {
      char b[32];
      std::snprintf(b, sizeof b, "CKR 0x%lx", static_cast<unsigned long>(rv));
      return b;
    }
  }
}

std::unexpected<Error> ck_fail(const std::string& where, const std::string& call, CK_RV rv,
                               Errc code = Errc::unavailable) {
  return fail(code, where, "PKCS#11", call + " failed: " + rv_name(rv));
}

// DER OIDs for CKA_EC_PARAMS.
const std::vector<std::uint8_t> kP256Params = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                               0xce, 0x3d, 0x03, 0x01, 0x07};
const std::vector<std::uint8_t> kEd25519Params = {0x06, 0x03, 0x2b, 0x65, 0x70};

const std::vector<std::uint8_t>& ec_params(crypto::KeyType type) {
  return type == crypto::KeyType::ed25519 ? kEd25519Params : kP256Params;
}
CK_KEY_TYPE ck_key_type(crypto::KeyType type) {
  return type == crypto::KeyType::ed25519 ? CKK_EC_EDWARDS : CKK_EC;
}

std::mutex g_modules_mu;
std::map<std::string, std::weak_ptr<Pkcs11Module>>& modules() {
  static auto* m = new std::map<std::string, std::weak_ptr<Pkcs11Module>>;
  return *m;
}

std::string trim_label(const unsigned char* p, std::size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

Result<std::shared_ptr<Pkcs11Module>> Pkcs11Module::load(const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return fail(Errc::invalid_argument, path, "PKCS#11 module",
                "must be an absolute path (a module is never searched for)");
  }
  std::lock_guard lock(g_modules_mu);
  if (auto live = modules()[path].lock()) return live;
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = ::dlerror();
    return fail(Errc::not_found, path, "PKCS#11 module",
                std::string("cannot be loaded: ") + (e ? e : "dlopen failed"));
  }
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
  if (get == nullptr) {
    ::dlclose(handle);
    return fail(Errc::invalid_argument, path, "PKCS#11 module",
                "has no C_GetFunctionList: not a PKCS#11 module");
  }
  auto m = std::make_shared<Pkcs11Module>(path, handle);
  if (CK_RV rv = get(&m->f); rv != CKR_OK || m->f == nullptr) {
    return ck_fail(path, "C_GetFunctionList", rv);
  }
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  const CK_RV rv = m->f->C_Initialize(&args);
  if (rv == CKR_OK) {
    m->finalize_ = true;
  } else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    return ck_fail(path, "C_Initialize", rv);
  }
  modules()[path] = m;
  return m;
}

struct Pkcs11Signer::State {
  std::shared_ptr<Pkcs11Module> module;
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
  mutable std::mutex mu;
  bool destroyed = false;
  std::string where;  // "<module>: token <label>: key <label>"

  ~State() {
    if (session != CK_INVALID_HANDLE) module->f->C_CloseSession(session);
  }
  CK_FUNCTION_LIST* f() const { return module->f; }

  // The objects of `cls` labelled `label`.
  Result<std::vector<CK_OBJECT_HANDLE>> find(CK_OBJECT_CLASS cls, const std::string& label) const {
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    if (CK_RV rv = f()->C_FindObjectsInit(session, t, 2); rv != CKR_OK) {
      return ck_fail(where, "C_FindObjectsInit", rv);
    }
    std::vector<CK_OBJECT_HANDLE> out;
    CK_OBJECT_HANDLE h[8];
    CK_ULONG n = 0;
    CK_RV rv;
    while ((rv = f()->C_FindObjects(session, h, 8, &n)) == CKR_OK && n > 0) {
      out.insert(out.end(), h, h + n);
      if (out.size() > 64) break;
    }
    f()->C_FindObjectsFinal(session);
    if (rv != CKR_OK) return ck_fail(where, "C_FindObjects", rv);
    return out;
  }

  Result<std::vector<std::uint8_t>> attribute(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                                              const char* name) const {
    CK_ATTRIBUTE a{type, nullptr, 0};
    if (CK_RV rv = f()->C_GetAttributeValue(session, obj, &a, 1); rv != CKR_OK) {
      return ck_fail(where, std::string("C_GetAttributeValue(") + name + ")", rv);
    }
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 4096) {
      return fail(Errc::failed_precondition, where, name, "not available");
    }
    std::vector<std::uint8_t> v(a.ulValueLen);
    a.pValue = v.data();
    if (CK_RV rv = f()->C_GetAttributeValue(session, obj, &a, 1); rv != CKR_OK) {
      return ck_fail(where, std::string("C_GetAttributeValue(") + name + ")", rv);
    }
    v.resize(a.ulValueLen);
    return v;
  }
};

namespace {

// CKA_EC_POINT: a DER OCTET STRING around the point (PKCS#11 2.40), or the
// bare point as some tokens give it.
Result<crypto::PublicKey> public_from_ec_point(crypto::KeyType type,
                                               const std::vector<std::uint8_t>& v,
                                               const std::string& where) {
  const std::size_t n = type == crypto::KeyType::ed25519 ? 32 : 65;
  crypto::ByteView raw;
  if (v.size() == n + 2 && v[0] == 0x04 && v[1] == n) {
    raw = crypto::ByteView(v).subspan(2);
  } else if (v.size() == n) {
    raw = crypto::ByteView(v);
  } else {
    return fail(Errc::failed_precondition, where, "CKA_EC_POINT",
                "is " + std::to_string(v.size()) + " bytes, not a " +
                    std::string(crypto::name(type)) + " point");
  }
  return with_context(crypto::PublicKey::from_raw(type, raw), where);
}

}  // namespace

Pkcs11Signer::Pkcs11Signer(Pkcs11Options options, crypto::PublicKey pub,
                           std::unique_ptr<State> state)
    : options_(std::move(options)), public_key_(std::move(pub)), state_(std::move(state)) {}

Pkcs11Signer::~Pkcs11Signer() = default;

Result<std::unique_ptr<Pkcs11Signer>> Pkcs11Signer::open_or_create(const Pkcs11Options& options) {
  return open(options, true);
}
Result<std::unique_ptr<Pkcs11Signer>> Pkcs11Signer::open_existing(const Pkcs11Options& options) {
  return open(options, false);
}

namespace {

// Session failures that a new session (and login) can mend: the token was
// reset, another user of the module closed all sessions, it logged out; or
// the key's handle is no longer valid (found again by label, and refused if
// the label now names another key).
bool session_lost(CK_RV rv) {
  return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
         rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID ||
         rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT;
}

// A session on the token labelled o.token_label, logged in with the PIN
// of o.pin_file (read each time, never kept).
Result<void> open_session(Pkcs11Signer::State& st, const Pkcs11Options& o) {
  if (st.session != CK_INVALID_HANDLE) {
    st.f()->C_CloseSession(st.session);
    st.session = CK_INVALID_HANDLE;
  }
  auto pin = read_private_file(o.pin_file, "PKCS#11 PIN file", 256);
  if (!pin) return std::unexpected(pin.error());
  struct Cleanse {
    std::string& s;
    ~Cleanse() { crypto::cleanse(s); }
  } cleanse{*pin};
  CK_FUNCTION_LIST* f = st.f();
  CK_ULONG count = 0;
  if (CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count); rv != CKR_OK) {
    return ck_fail(o.module_path, "C_GetSlotList", rv);
  }
  std::vector<CK_SLOT_ID> slots(count);
  if (CK_RV rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count); rv != CKR_OK) {
    return ck_fail(o.module_path, "C_GetSlotList", rv);
  }
  slots.resize(count);
  std::optional<CK_SLOT_ID> slot;
  std::string seen;
  for (CK_SLOT_ID s : slots) {
    CK_TOKEN_INFO info{};
    if (f->C_GetTokenInfo(s, &info) != CKR_OK) continue;
    if (!(info.flags & CKF_TOKEN_INITIALIZED)) continue;
    const std::string label = trim_label(info.label, sizeof info.label);
    seen += (seen.empty() ? "\"" : ", \"") + label + "\"";
    if (label == o.token_label) {
      slot = s;
      break;
    }
  }
  if (!slot) {
    return fail(Errc::not_found, o.module_path, "PKCS#11 token",
                "no initialised token labelled \"" + o.token_label +
                    "\" (tokens: " + (seen.empty() ? "none" : seen) + ")");
  }
  if (CK_RV rv = f->C_OpenSession(*slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                  &st.session);
      rv != CKR_OK) {
    st.session = CK_INVALID_HANDLE;
    return ck_fail(st.where, "C_OpenSession", rv);
  }
  const CK_RV login =
      f->C_Login(st.session, CKU_USER, reinterpret_cast<unsigned char*>(pin->data()), pin->size());
  if (login == CKR_PIN_INCORRECT || login == CKR_PIN_LEN_RANGE) {
    return fail(Errc::permission_denied, st.where, "PKCS#11 login",
                "wrong PIN (" + rv_name(login) + ", from " + o.pin_file + ")");
  }
  if (login == CKR_PIN_LOCKED) {
    return fail(Errc::permission_denied, st.where, "PKCS#11 login",
                "the user PIN is locked (CKR_PIN_LOCKED): the token's SO must reset it");
  }
  if (login != CKR_OK && login != CKR_USER_ALREADY_LOGGED_IN) {
    return ck_fail(st.where, "C_Login", login);
  }
  return {};
}

// The key pair labelled o.key_label: found (and checked to be of o.type),
// or generated when `create`. Its public key.
Result<crypto::PublicKey> locate(Pkcs11Signer::State& st, const Pkcs11Options& o, bool create) {
  CK_FUNCTION_LIST* f = st.f();
  auto privs = st.find(CKO_PRIVATE_KEY, o.key_label);
  if (!privs) return std::unexpected(privs.error());
  auto pubs = st.find(CKO_PUBLIC_KEY, o.key_label);
  if (!pubs) return std::unexpected(pubs.error());
  if (privs->size() > 1 || pubs->size() > 1) {
    return fail(Errc::failed_precondition, st.where, "PKCS#11 device key",
                "several key objects carry this label: refused (one device, one key)");
  }
  if (privs->empty()) {
    if (!pubs->empty()) {
      return fail(Errc::failed_precondition, st.where, "PKCS#11 device key",
                  "a public key without its private key");
    }
    if (!create) return fail(Errc::not_found, st.where, "PKCS#11 device key", "no such key");
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    std::uint8_t id[16];
    if (auto r = crypto::random_bytes(id); !r) return std::unexpected(r.error());
    const auto& params = ec_params(o.type);
    char* label = const_cast<char*>(o.key_label.data());
    CK_ATTRIBUTE pub_t[] = {
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &no, sizeof no},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_EC_PARAMS, const_cast<std::uint8_t*>(params.data()), params.size()},
        {CKA_LABEL, label, o.key_label.size()},
        {CKA_ID, id, sizeof id},
    };
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},      {CKA_LABEL, label, o.key_label.size()},
        {CKA_ID, id, sizeof id},
    };
    CK_MECHANISM mech{
        o.type == crypto::KeyType::ed25519 ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN,
        nullptr, 0};
    if (CK_RV rv = f->C_GenerateKeyPair(st.session, &mech, pub_t, std::size(pub_t), priv_t,
                                        std::size(priv_t), &st.pub, &st.priv);
        rv != CKR_OK) {
      return ck_fail(st.where, "C_GenerateKeyPair", rv);
    }
  } else {
    if (pubs->empty()) {
      return fail(Errc::failed_precondition, st.where, "PKCS#11 device key",
                  "its public key object is missing");
    }
    st.priv = privs->front();
    st.pub = pubs->front();
    auto kt = st.attribute(st.priv, CKA_KEY_TYPE, "CKA_KEY_TYPE");
    if (!kt) return std::unexpected(kt.error());
    CK_KEY_TYPE have = 0;
    if (kt->size() == sizeof have) std::memcpy(&have, kt->data(), sizeof have);
    auto params = st.attribute(st.pub, CKA_EC_PARAMS, "CKA_EC_PARAMS");
    if (!params) return std::unexpected(params.error());
    if (have != ck_key_type(o.type) || *params != ec_params(o.type)) {
      return fail(
          Errc::failed_precondition, st.where, "PKCS#11 device key",
          "is not a " + std::string(crypto::name(o.type)) + " key, which the config asks for");
    }
  }
  auto point = st.attribute(st.pub, CKA_EC_POINT, "CKA_EC_POINT");
  if (!point) return std::unexpected(point.error());
  return public_from_ec_point(o.type, *point, st.where);
}

}  // namespace

Result<std::unique_ptr<Pkcs11Signer>> Pkcs11Signer::open(const Pkcs11Options& o, bool create) {
  if (o.type == crypto::KeyType::sm2) {
    return fail(Errc::invalid_argument, o.module_path, "PKCS#11 device key",
                "SM2 keys stay in the file backend: SoftHSM2 has no SM2");
  }
  if (o.token_label.empty() || o.key_label.empty() || o.pin_file.empty()) {
    return fail(Errc::invalid_argument, o.module_path, "PKCS#11 device key",
                "token label, key label and PIN file are all required");
  }
  // The PIN file is checked before the module is touched.
  if (auto pin = read_private_file(o.pin_file, "PKCS#11 PIN file", 256); !pin) {
    return std::unexpected(pin.error());
  } else {
    crypto::cleanse(*pin);
  }
  auto module = Pkcs11Module::load(o.module_path);
  if (!module) return std::unexpected(module.error());
  auto st = std::make_unique<State>();
  st->module = *module;
  st->where = o.module_path + ": token \"" + o.token_label + "\"";
  PORTIER_TRY(open_session(*st, o));
  st->where += ": key \"" + o.key_label + "\"";
  auto pub = locate(*st, o, create);
  if (!pub) return std::unexpected(pub.error());
  return std::unique_ptr<Pkcs11Signer>(new Pkcs11Signer(o, std::move(*pub), std::move(st)));
}

Result<void> Pkcs11Signer::reconnect_locked() const {
  const std::string where = state_->where;
  state_->where = options_.module_path + ": token \"" + options_.token_label + "\"";
  auto ok = open_session(*state_, options_);
  state_->where = where;
  if (!ok) return ok;
  auto pub = locate(*state_, options_, false);
  if (!pub) return std::unexpected(pub.error());
  auto a = pub->raw();
  auto b = public_key_.raw();
  if (!a || !b || *a != *b) {
    state_->destroyed = true;
    return fail(Errc::failed_precondition, state_->where, "PKCS#11 device key",
                "the key under this label is another one now: refused");
  }
  return {};
}

Result<crypto::Bytes> Pkcs11Signer::sign(crypto::ByteView message) const {
  std::lock_guard lock(state_->mu);
  if (state_->destroyed) {
    return fail(Errc::failed_precondition, state_->where, "sign", "the key was destroyed");
  }
  const bool ed = options_.type == crypto::KeyType::ed25519;
  crypto::Bytes input;
  if (ed) {
    input.assign(message.begin(), message.end());
  } else {
    auto d = crypto::digest(crypto::DigestAlgo::sha256, message);
    if (!d) return std::unexpected(d.error());
    input = std::move(*d);
  }
  std::uint8_t sig[64];
  CK_ULONG len = sizeof sig;
  for (int attempt = 0;; ++attempt) {
    CK_FUNCTION_LIST* f = state_->f();
    CK_MECHANISM mech{ed ? CKM_EDDSA : CKM_ECDSA, nullptr, 0};
    CK_RV rv = f->C_SignInit(state_->session, &mech, state_->priv);
    const char* call = "C_SignInit";
    if (rv == CKR_OK) {
      len = sizeof sig;
      rv = f->C_Sign(state_->session, input.data(), input.size(), sig, &len);
      call = "C_Sign";
    }
    if (rv == CKR_OK) break;
    if (attempt == 0 && session_lost(rv)) {
      // One new session, then the same signature again.
      if (auto ok = reconnect_locked(); !ok) {
        return std::unexpected(ok.error().with_context(
            std::string(call) + " failed: " + rv_name(rv) + "; a new session"));
      }
      continue;
    }
    return ck_fail(state_->where, call, rv);
  }
  if (len != 64) {
    return fail(Errc::internal, state_->where, "C_Sign",
                "gave " + std::to_string(len) + " bytes, not 64");
  }
  if (ed) return crypto::Bytes(sig, sig + 64);
  return crypto::ec_signature_der(crypto::ByteView(sig, 32), crypto::ByteView(sig + 32, 32));
}

Result<void> Pkcs11Signer::relabel(const std::string& key_label) {
  std::lock_guard lock(state_->mu);
  if (state_->destroyed) {
    return fail(Errc::failed_precondition, state_->where, "relabel", "the key was destroyed");
  }
  CK_ATTRIBUTE a{CKA_LABEL, const_cast<char*>(key_label.data()), key_label.size()};
  for (CK_OBJECT_HANDLE h : {state_->priv, state_->pub}) {
    if (CK_RV rv = state_->f()->C_SetAttributeValue(state_->session, h, &a, 1); rv != CKR_OK) {
      return ck_fail(state_->where, "C_SetAttributeValue(CKA_LABEL)", rv);
    }
  }
  options_.key_label = key_label;
  return {};
}

Result<void> Pkcs11Signer::destroy() {
  std::lock_guard lock(state_->mu);
  if (state_->destroyed) return {};
  if (CK_RV rv = state_->f()->C_DestroyObject(state_->session, state_->priv); rv != CKR_OK) {
    return ck_fail(state_->where, "C_DestroyObject(private key)", rv);
  }
  state_->destroyed = true;
  // The private half is what matters; a public half left behind is harmless
  // but reported.
  if (CK_RV rv = state_->f()->C_DestroyObject(state_->session, state_->pub); rv != CKR_OK) {
    return ck_fail(state_->where, "C_DestroyObject(public key)", rv);
  }
  return {};
}

}  // namespace portier::identity
