#include "agent/attest/tpm_client.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "agent/attest/tcg_event_log.h"
#include "agent/attest/tss2_api.h"
#include "common/crypto/keys.h"
#include "common/crypto/sign.h"

namespace portier::attest {
namespace {

constexpr const char* kWhere = "attest/tpm";

// Only after tss2_api() succeeded (with_esys and verify_quote check it).
const Tss2Api& tss() { return **tss2_api(); }

std::unexpected<Error> tpm_fail(const std::string& what, TSS2_RC rc) {
  return fail(Errc::io, kWhere, what, std::string("TPM error: ") + tss().Tss2_RC_Decode(rc));
}

template <class T>
using Op = std::function<Result<T>(ESYS_CONTEXT*)>;

// Opens TCTI + ESYS on the calling (worker) thread, runs op, closes both.
template <class T>
Result<T> with_esys(const std::string& conf, const Op<T>& op) {
  if (auto api = tss2_api(); !api) return std::unexpected(api.error());
  TSS2_TCTI_CONTEXT* tcti = nullptr;
  TSS2_RC rc = tss().Tss2_TctiLdr_Initialize(conf.empty() ? nullptr : conf.c_str(), &tcti);
  if (rc != TSS2_RC_SUCCESS) {
    return fail(Errc::not_found, kWhere, "TCTI '" + conf + "'",
                std::string("no TPM: cannot open it: ") + tss().Tss2_RC_Decode(rc));
  }
  ESYS_CONTEXT* esys = nullptr;
  rc = tss().Esys_Initialize(&esys, tcti, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    tss().Tss2_TctiLdr_Finalize(&tcti);
    return fail(Errc::not_found, kWhere, "TCTI '" + conf + "'",
                std::string("no TPM: ESAPI initialisation failed: ") + tss().Tss2_RC_Decode(rc));
  }
  Result<T> r = op(esys);
  tss().Esys_Finalize(&esys);
  tss().Tss2_TctiLdr_Finalize(&tcti);
  return r;
}

// Runs op on a worker thread with a deadline (see tpm_client.h).
template <class T>
Result<T> run_with_deadline(const TpmConfig& cfg,
                            const std::shared_ptr<std::atomic<int>>& abandoned,
                            const std::string& what, Op<T> op) {
  if (abandoned->load() >= kMaxAbandonedCalls) {
    return fail(Errc::unavailable, kWhere, what,
                "TPM still busy: " + std::to_string(abandoned->load()) +
                    " earlier calls never returned; not sending more");
  }
  struct State {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false;
    std::optional<Result<T>> result;
  };
  auto st = std::make_shared<State>();
  std::thread worker([st, conf = cfg.tcti, op = std::move(op), abandoned]() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    Result<T> r = with_esys<T>(conf, op);
    bool was_abandoned = false;
    {
      std::lock_guard lk(st->m);
      st->result.emplace(std::move(r));
      st->done = true;
      was_abandoned = st->abandoned;
    }
    st->cv.notify_all();
    if (was_abandoned) abandoned->fetch_sub(1);
  });
  std::unique_lock lk(st->m);
  if (st->cv.wait_for(lk, cfg.timeout, [&] { return st->done; })) {
    Result<T> r = std::move(*st->result);
    lk.unlock();
    worker.join();
    return r;
  }
  st->abandoned = true;
  abandoned->fetch_add(1);
  lk.unlock();
  worker.detach();
  return fail(Errc::unavailable, kWhere, what,
              "TPM did not answer within " + std::to_string(cfg.timeout.count()) + " ms (TCTI '" +
                  cfg.tcti + "')");
}

std::uint16_t bank_size(std::uint16_t bank) { return tcg_alg_digest_size(bank); }

Result<void> check_pcrs(std::span<const std::uint32_t> pcrs, const std::string& what) {
  if (pcrs.empty()) return fail(Errc::invalid_argument, kWhere, what, "no PCR selected");
  for (auto p : pcrs) {
    if (p > kMaxPcrIndex) {
      return fail(Errc::invalid_argument, kWhere, what,
                  "PCR " + std::to_string(p) + " out of range 0..23");
    }
  }
  return {};
}

TPML_PCR_SELECTION make_selection(std::uint16_t bank, const std::set<std::uint32_t>& pcrs) {
  TPML_PCR_SELECTION sel{};
  sel.count = 1;
  sel.pcrSelections[0].hash = bank;
  sel.pcrSelections[0].sizeofSelect = 3;
  for (auto p : pcrs) sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<BYTE>(1u << (p % 8));
  return sel;
}

}  // namespace

TpmClient::TpmClient(TpmConfig cfg) : cfg_(std::move(cfg)) {}

Result<std::string> TpmClient::probe() {
  return run_with_deadline<std::string>(
      cfg_, abandoned_, "TPM probe", [](ESYS_CONTEXT* esys) -> Result<std::string> {
        TPMI_YES_NO more = TPM2_NO;
        TPMS_CAPABILITY_DATA* cap = nullptr;
        TSS2_RC rc =
            tss().Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1, &more, &cap);
        if (rc != TSS2_RC_SUCCESS) return tpm_fail("GetCapability(TPM_PT_MANUFACTURER)", rc);
        std::string m;
        if (cap->data.tpmProperties.count > 0) {
          const UINT32 v = cap->data.tpmProperties.tpmProperty[0].value;
          for (int s = 24; s >= 0; s -= 8) {
            const char c = static_cast<char>((v >> s) & 0xff);
            if (c >= 0x20 && c < 0x7f) m.push_back(c);
          }
        }
        tss().Esys_Free(cap);
        return m;
      });
}

Result<PcrRead> TpmClient::read_pcrs(std::span<const std::uint16_t> banks,
                                     std::span<const std::uint32_t> pcrs) {
  if (auto ok = check_pcrs(pcrs, "PCR read"); !ok) return std::unexpected(ok.error());
  std::vector<std::uint16_t> bank_list(banks.begin(), banks.end());
  std::set<std::uint32_t> wanted(pcrs.begin(), pcrs.end());
  return run_with_deadline<PcrRead>(
      cfg_, abandoned_, "PCR read", [bank_list, wanted](ESYS_CONTEXT* esys) -> Result<PcrRead> {
        PcrRead out;
        for (auto bank : bank_list) {
          std::set<std::uint32_t> left = wanted;
          bool got_any = false;
          for (int round = 0; !left.empty() && round < 32; ++round) {
            TPML_PCR_SELECTION sel = make_selection(bank, left);
            UINT32 counter = 0;
            TPML_PCR_SELECTION* sel_out = nullptr;
            TPML_DIGEST* values = nullptr;
            TSS2_RC rc = tss().Esys_PCR_Read(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel,
                                             &counter, &sel_out, &values);
            if (rc != TSS2_RC_SUCCESS) return tpm_fail("PCR_Read(" + tcg_alg_name(bank) + ")", rc);
            std::size_t k = 0;
            for (UINT32 s = 0; s < sel_out->count; ++s) {
              const auto& ps = sel_out->pcrSelections[s];
              if (ps.hash != bank) continue;
              for (std::uint32_t p = 0; p < 8u * ps.sizeofSelect && p <= kMaxPcrIndex; ++p) {
                if (!(ps.pcrSelect[p / 8] & (1u << (p % 8)))) continue;
                if (k >= values->count) break;
                const auto& d = values->digests[k++];
                out.values[bank][p] = Bytes(d.buffer, d.buffer + d.size);
                left.erase(p);
              }
            }
            tss().Esys_Free(sel_out);
            tss().Esys_Free(values);
            if (k == 0) {
              if (!got_any) {
                out.absent_banks.push_back(bank);
                out.values.erase(bank);
                left.clear();
                break;
              }
              return fail(Errc::io, kWhere, "PCR_Read(" + tcg_alg_name(bank) + ")",
                          "TPM returned no value for PCR " + std::to_string(*left.begin()));
            }
            got_any = true;
          }
        }
        return out;
      });
}

Result<void> TpmClient::extend(std::uint32_t pcr, const std::map<std::uint16_t, Bytes>& digests) {
  const std::uint32_t one[] = {pcr};
  if (auto ok = check_pcrs(one, "PCR extend"); !ok) return ok;
  TPML_DIGEST_VALUES dv{};
  for (const auto& [bank, d] : digests) {
    if (dv.count >= TPM2_NUM_PCR_BANKS || bank_size(bank) == 0 || d.size() != bank_size(bank)) {
      return fail(Errc::invalid_argument, kWhere, "PCR extend",
                  "bad digest for bank " + tcg_alg_name(bank));
    }
    dv.digests[dv.count].hashAlg = bank;
    std::memcpy(&dv.digests[dv.count].digest, d.data(), d.size());
    ++dv.count;
  }
  return run_with_deadline<void>(
      cfg_, abandoned_, "PCR extend", [pcr, dv](ESYS_CONTEXT* esys) -> Result<void> {
        TSS2_RC rc = tss().Esys_PCR_Extend(esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                           ESYS_TR_NONE, &dv);
        if (rc != TSS2_RC_SUCCESS) return tpm_fail("PCR_Extend(" + std::to_string(pcr) + ")", rc);
        return {};
      });
}

Result<Quote> TpmClient::quote(std::span<const std::uint8_t> nonce, std::uint16_t bank,
                               std::span<const std::uint32_t> pcrs) {
  if (auto ok = check_pcrs(pcrs, "quote"); !ok) return std::unexpected(ok.error());
  if (nonce.size() > sizeof(TPMU_HA)) {
    return fail(Errc::invalid_argument, kWhere, "quote",
                "nonce of " + std::to_string(nonce.size()) + " bytes, at most 64");
  }
  if (bank_size(bank) == 0) {
    return fail(Errc::invalid_argument, kWhere, "quote", "unknown bank " + tcg_alg_name(bank));
  }
  std::set<std::uint32_t> sel_set(pcrs.begin(), pcrs.end());
  TPM2B_DATA qd{};
  qd.size = static_cast<UINT16>(nonce.size());
  std::memcpy(qd.buffer, nonce.data(), nonce.size());
  return run_with_deadline<Quote>(
      cfg_, abandoned_, "quote", [qd, bank, sel_set](ESYS_CONTEXT* esys) -> Result<Quote> {
        TPM2B_SENSITIVE_CREATE in_sensitive{};
        TPM2B_PUBLIC in_public{};
        auto& pa = in_public.publicArea;
        pa.type = TPM2_ALG_ECC;
        pa.nameAlg = TPM2_ALG_SHA256;
        pa.objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED |
                              TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
                              TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;
        auto& ecc = pa.parameters.eccDetail;
        ecc.symmetric.algorithm = TPM2_ALG_NULL;
        ecc.scheme.scheme = TPM2_ALG_ECDSA;
        ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        ecc.curveID = TPM2_ECC_NIST_P256;
        ecc.kdf.scheme = TPM2_ALG_NULL;
        TPM2B_DATA outside{};
        TPML_PCR_SELECTION creation_pcr{};
        ESYS_TR ak = ESYS_TR_NONE;
        TPM2B_PUBLIC* out_public = nullptr;
        TPM2B_CREATION_DATA* cdata = nullptr;
        TPM2B_DIGEST* chash = nullptr;
        TPMT_TK_CREATION* ticket = nullptr;
        TSS2_RC rc = tss().Esys_CreatePrimary(
            esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &in_sensitive,
            &in_public, &outside, &creation_pcr, &ak, &out_public, &cdata, &chash, &ticket);
        if (rc != TSS2_RC_SUCCESS) return tpm_fail("CreatePrimary(attestation key)", rc);
        tss().Esys_Free(cdata);
        tss().Esys_Free(chash);
        tss().Esys_Free(ticket);

        Quote q;
        q.bank = bank;
        q.pcrs.assign(sel_set.begin(), sel_set.end());
        std::uint8_t buf[sizeof(TPM2B_PUBLIC) + 64];
        size_t off = 0;
        rc = tss().Tss2_MU_TPM2B_PUBLIC_Marshal(out_public, buf, sizeof buf, &off);
        if (rc == TSS2_RC_SUCCESS) q.ak_public.assign(buf, buf + off);
        const auto& pt = out_public->publicArea.unique.ecc;
        q.ak_point.push_back(0x04);
        q.ak_point.insert(q.ak_point.end(), 32 - std::min<size_t>(32, pt.x.size), 0);
        q.ak_point.insert(q.ak_point.end(), pt.x.buffer,
                          pt.x.buffer + std::min<size_t>(32, pt.x.size));
        q.ak_point.insert(q.ak_point.end(), 32 - std::min<size_t>(32, pt.y.size), 0);
        q.ak_point.insert(q.ak_point.end(), pt.y.buffer,
                          pt.y.buffer + std::min<size_t>(32, pt.y.size));
        tss().Esys_Free(out_public);

        TPMT_SIG_SCHEME scheme{};
        scheme.scheme = TPM2_ALG_NULL;
        TPML_PCR_SELECTION sel = make_selection(bank, sel_set);
        TPM2B_ATTEST* quoted = nullptr;
        TPMT_SIGNATURE* sig = nullptr;
        TPM2B_DATA nonce = qd;
        rc = tss().Esys_Quote(esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &nonce,
                              &scheme, &sel, &quoted, &sig);
        tss().Esys_FlushContext(esys, ak);
        if (rc != TSS2_RC_SUCCESS) return tpm_fail("Quote", rc);
        q.attest.assign(quoted->attestationData, quoted->attestationData + quoted->size);
        std::uint8_t sbuf[sizeof(TPMT_SIGNATURE) + 16];
        off = 0;
        rc = tss().Tss2_MU_TPMT_SIGNATURE_Marshal(sig, sbuf, sizeof sbuf, &off);
        tss().Esys_Free(quoted);
        tss().Esys_Free(sig);
        if (rc != TSS2_RC_SUCCESS) return tpm_fail("marshal signature", rc);
        q.signature.assign(sbuf, sbuf + off);
        return q;
      });
}

Result<void> verify_quote(const Quote& q, std::span<const std::uint8_t> ak_point,
                          std::span<const std::uint8_t> nonce, const PcrValues& expected) {
  const char* where = "attest/verify";
  if (auto api = tss2_api(); !api) return std::unexpected(api.error());
  auto bad = [&](std::string why) {
    return fail(Errc::failed_precondition, where, "quote", std::move(why));
  };
  TPMS_ATTEST a{};
  size_t off = 0;
  if (tss().Tss2_MU_TPMS_ATTEST_Unmarshal(q.attest.data(), q.attest.size(), &off, &a) !=
          TSS2_RC_SUCCESS ||
      off != q.attest.size()) {
    return bad("attestation data is not a well-formed TPMS_ATTEST");
  }
  if (a.magic != TPM2_GENERATED_VALUE) return bad("attestation not generated by a TPM (magic)");
  if (a.type != TPM2_ST_ATTEST_QUOTE) return bad("attestation is not a quote");
  if (a.extraData.size != nonce.size() ||
      !std::equal(nonce.begin(), nonce.end(), a.extraData.buffer)) {
    return bad("nonce mismatch: the quote is not an answer to this challenge (replay?)");
  }
  // Selection must be exactly the claimed bank/PCRs.
  const auto& ps = a.attested.quote.pcrSelect;
  std::set<std::uint32_t> quoted;
  for (UINT32 s = 0; s < ps.count; ++s) {
    const auto& sel = ps.pcrSelections[s];
    for (std::uint32_t p = 0; p < 8u * sel.sizeofSelect; ++p) {
      if (sel.pcrSelect[p / 8] & (1u << (p % 8))) {
        if (sel.hash != q.bank) return bad("quote covers bank " + tcg_alg_name(sel.hash));
        quoted.insert(p);
      }
    }
  }
  if (std::vector<std::uint32_t>(quoted.begin(), quoted.end()) != q.pcrs) {
    return bad("PCR selection in the attestation differs from the claimed one");
  }
  Bytes concat;
  auto bank_it = expected.find(q.bank);
  for (auto p : q.pcrs) {
    if (bank_it == expected.end() || !bank_it->second.contains(p)) {
      return bad("no expected value for PCR " + std::to_string(p) + " (" + tcg_alg_name(q.bank) +
                 ")");
    }
    const Bytes& v = bank_it->second.at(p);
    concat.insert(concat.end(), v.begin(), v.end());
  }
  const Bytes digest = hash_bytes(kAlgSha256, concat);
  const auto& pd = a.attested.quote.pcrDigest;
  if (pd.size != digest.size() || !std::equal(digest.begin(), digest.end(), pd.buffer)) {
    return bad("PCR digest " + to_hex({pd.buffer, pd.size}) +
               " differs from the expected values' digest " + to_hex(digest));
  }
  // Signature.
  TPMT_SIGNATURE sig{};
  off = 0;
  if (tss().Tss2_MU_TPMT_SIGNATURE_Unmarshal(q.signature.data(), q.signature.size(), &off, &sig) !=
          TSS2_RC_SUCCESS ||
      off != q.signature.size()) {
    return bad("signature is not a well-formed TPMT_SIGNATURE");
  }
  if (sig.sigAlg != TPM2_ALG_ECDSA || sig.signature.ecdsa.hash != TPM2_ALG_SHA256) {
    return bad("signature is not ECDSA with SHA-256");
  }
  if (ak_point.size() != 65 || ak_point[0] != 0x04)
    return bad("AK is not an uncompressed P-256 point");
  const auto& ecdsa = sig.signature.ecdsa;
  auto der = crypto::ec_signature_der({ecdsa.signatureR.buffer, ecdsa.signatureR.size},
                                      {ecdsa.signatureS.buffer, ecdsa.signatureS.size});
  auto ak = crypto::PublicKey::from_raw(crypto::KeyType::ecdsa_p256, ak_point);
  const bool key_ok = ak.has_value();
  const bool verified = key_ok && der && crypto::verify(*ak, q.attest, *der).has_value();
  if (!key_ok) return bad("AK public point is not on P-256");
  if (!verified) return bad("signature does not verify with the attestation key");
  return {};
}

}  // namespace portier::attest
