#include "agent/attest/pcr_replay.h"

#include <algorithm>

namespace portier::attest {
namespace {

void put_u32le(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

Result<TcgReplay> replay_tcg_event_log(const TcgEventLog& log) {
  TcgReplay out;
  std::vector<std::uint16_t> banks;
  for (const auto& a : log.algorithms) {
    if (a.alg_id == kAlgSha1 || a.alg_id == kAlgSha256 || a.alg_id == kAlgSha384 ||
        a.alg_id == kAlgSha512) {
      banks.push_back(a.alg_id);
    }
  }
  if (banks.empty()) {
    return fail(Errc::invalid_argument, "attest/replay", "firmware event log",
                "the log declares no hash algorithm that can be replayed");
  }
  for (auto bank : banks) {
    const std::size_t n = tcg_alg_digest_size(bank);
    auto& pcrs = out.pcrs[bank];
    for (std::uint32_t i = 0; i <= kMaxPcrIndex; ++i) {
      pcrs[i] = Bytes(n, (i >= 17 && i <= 22) ? 0xff : 0x00);
    }
    if (log.has_startup_locality) pcrs[0].back() = log.startup_locality;
    out.extended[bank];
  }
  for (const auto& ev : log.events) {
    if (ev.type == kEvNoAction) continue;
    for (auto bank : banks) {
      const TcgDigest* d = nullptr;
      for (const auto& x : ev.digests) {
        if (x.alg_id == bank) d = &x;
      }
      if (d == nullptr) {
        return fail(Errc::invalid_argument, "attest/replay",
                    "firmware event at offset " + std::to_string(ev.offset),
                    tcg_event_type_name(ev.type) + " on PCR " + std::to_string(ev.pcr) +
                        " has no " + tcg_alg_name(bank) +
                        " digest although the log declares that bank");
      }
      auto& v = out.pcrs[bank][ev.pcr];
      v = pcr_extend(bank, v, d->bytes);
      out.extended[bank].insert(ev.pcr);
    }
    ++out.events_replayed;
  }
  return out;
}

Bytes ima_template_data(const ImaEntry& e) {
  Bytes data;
  if (e.template_name == "ima-ng") {
    Bytes d(e.filedata_alg.begin(), e.filedata_alg.end());
    d.push_back(':');
    d.push_back(0);
    d.insert(d.end(), e.filedata_hash.begin(), e.filedata_hash.end());
    put_u32le(data, static_cast<std::uint32_t>(d.size()));
    data.insert(data.end(), d.begin(), d.end());
    put_u32le(data, static_cast<std::uint32_t>(e.filename.size() + 1));
    data.insert(data.end(), e.filename.begin(), e.filename.end());
    data.push_back(0);
  } else if (e.template_name == "ima") {
    data = e.filedata_hash;
    Bytes name(256, 0);
    std::copy_n(e.filename.begin(), std::min<std::size_t>(e.filename.size(), 255), name.begin());
    data.insert(data.end(), name.begin(), name.end());
  }
  return data;
}

Result<ImaReplay> replay_ima_log(const std::vector<ImaEntry>& entries, ImaSha256Mode mode,
                                 const PcrValues* target) {
  ImaReplay out;
  bool sha256_ok = true;
  for (const auto& e : entries) {
    if (mode == ImaSha256Mode::template_data && !e.violation && e.template_name != "ima" &&
        e.template_name != "ima-ng" && sha256_ok) {
      sha256_ok = false;
      out.skipped.push_back("sha256 bank of PCR " + std::to_string(e.pcr) +
                            " not replayed: template '" + e.template_name + "' (line " +
                            std::to_string(e.line) + ") cannot be rebuilt from the ASCII log");
    }
  }
  std::vector<std::uint16_t> banks{kAlgSha1};
  if (sha256_ok) banks.push_back(kAlgSha256);

  auto check_prefix = [&](std::uint16_t bank, std::uint32_t pcr, std::size_t n) {
    if (target == nullptr) return;
    auto b = target->find(bank);
    if (b == target->end()) return;
    auto p = b->second.find(pcr);
    if (p == b->second.end()) return;
    if (out.pcrs[bank][pcr] == p->second) out.matched_prefix[bank][pcr] = n;
  };

  std::size_t n = 0;
  for (const auto& e : entries) {
    Bytes tdata;
    if (!e.violation) {
      tdata = ima_template_data(e);
      if (!tdata.empty() && hash_bytes(kAlgSha1, tdata) != e.template_hash) {
        return fail(Errc::invalid_argument, "attest/ima", "IMA log line " + std::to_string(e.line),
                    "the template hash does not match the file hash and name of the line "
                    "(edited entry)");
      }
    }
    for (auto bank : banks) {
      auto& pcrs = out.pcrs[bank];
      const std::size_t size = bank == kAlgSha1 ? 20 : 32;
      auto it = pcrs.find(e.pcr);
      if (it == pcrs.end()) {
        it = pcrs.emplace(e.pcr, Bytes(size, 0)).first;
        check_prefix(bank, e.pcr, n);
      }
      Bytes digest;
      if (e.violation) {
        digest.assign(size, 0xff);
      } else if (bank == kAlgSha1) {
        digest = e.template_hash;
      } else if (mode == ImaSha256Mode::padded_sha1) {
        digest = e.template_hash;
        digest.resize(32, 0);
      } else {
        digest = hash_bytes(kAlgSha256, tdata);
      }
      it->second = pcr_extend(bank, it->second, digest);
    }
    ++n;
    for (auto bank : banks) check_prefix(bank, e.pcr, n);
  }
  out.entries = n;
  return out;
}

}  // namespace portier::attest
