#include "agent/attest/boot_integrity_check.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "agent/attest/reference_values.h"

namespace portier::attest {
namespace {

struct Finder {
  BootIntegrityResult& r;
  void warn(std::string why) {
    if (r.state == BootState::ok) r.state = BootState::warn;
    r.reasons.push_back(std::move(why));
  }
  void fail(std::string why) {
    r.state = BootState::fail;
    r.reasons.push_back(std::move(why));
  }
};

std::string pcr_name(std::uint16_t bank, std::uint32_t pcr) {
  return "PCR " + std::to_string(pcr) + " (" + tcg_alg_name(bank) + ")";
}

enum class ReadStatus { ok, missing, error, too_big };

ReadStatus read_file(const std::string& path, std::size_t cap, std::string& out, std::string& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int e = errno;
    err = std::strerror(e);
    return e == ENOENT ? ReadStatus::missing : ReadStatus::error;
  }
  out.clear();
  char buf[65536];
  while (in) {
    in.read(buf, sizeof buf);
    out.append(buf, static_cast<std::size_t>(in.gcount()));
    if (out.size() > cap) return ReadStatus::too_big;
  }
  if (in.bad()) {
    err = "read error";
    return ReadStatus::error;
  }
  return ReadStatus::ok;
}

}  // namespace

const char* to_string(BootState s) {
  switch (s) {
    case BootState::ok:
      return "ok";
    case BootState::warn:
      return "warn";
    case BootState::fail:
      return "fail";
  }
  return "?";
}

BootIntegrityCheck::BootIntegrityCheck(BootIntegrityConfig cfg)
    : cfg_(std::move(cfg)), tpm_(cfg_.tpm) {}

BootIntegrityResult BootIntegrityCheck::run() {
  const auto t0 = std::chrono::steady_clock::now();
  BootIntegrityResult res;
  Finder f{res};
  auto done = [&]() -> BootIntegrityResult {
    res.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    return res;
  };

  // 1. TPM PCRs.
  const std::uint16_t banks[] = {kAlgSha1, kAlgSha256};
  std::vector<std::uint32_t> all;
  for (std::uint32_t i = 0; i <= kMaxPcrIndex; ++i) all.push_back(i);
  auto read = tpm_.read_pcrs(banks, all);
  if (!read) {
    if (read.error().code == Errc::not_found) {
      res.degraded = true;
      f.warn("degraded: no TPM (" + read.error().message() + ")");
    } else {
      f.fail("TPM: " + read.error().message());
    }
    return done();
  }
  res.tpm_present = true;
  const PcrValues& tpm = read->values;
  for (auto b : read->absent_banks) {
    f.warn("the TPM has no " + tcg_alg_name(b) + " PCR bank allocated; checked without it");
  }
  if (tpm.empty()) {
    f.fail("the TPM has neither a sha1 nor a sha256 PCR bank");
    return done();
  }
  for (const auto& [bank, pcrs] : tpm) {
    for (const auto& [idx, v] : pcrs)
      res.measured[tcg_alg_name(bank) + ":" + std::to_string(idx)] = to_hex(v);
  }

  // 2. Reference values.
  if (cfg_.reference_path.empty()) {
    f.warn("no reference PCR values provisioned");
  } else if (auto ref = load_reference_values(cfg_.reference_path); !ref) {
    f.fail("reference values unusable: " + ref.error().message());
  } else {
    for (const auto& [bank, pcrs] : *ref) {
      auto tb = tpm.find(bank);
      for (const auto& [idx, want] : pcrs) {
        if (tb == tpm.end()) {
          f.fail("reference for " + pcr_name(bank, idx) + " but the TPM has no " +
                 tcg_alg_name(bank) + " bank");
          break;
        }
        const Bytes& have = tb->second.at(idx);
        if (have != want) {
          f.fail(pcr_name(bank, idx) + " differs from the provisioned reference: TPM " +
                 to_hex(have) + ", reference " + to_hex(want));
        }
      }
    }
  }

  // 3. Firmware event log.
  if (!cfg_.event_log_path.empty()) {
    std::string bytes, err;
    switch (read_file(cfg_.event_log_path, kMaxTcgLogBytes, bytes, err)) {
      case ReadStatus::missing:
        res.degraded = true;
        f.warn("no firmware event log at " + cfg_.event_log_path + ": PCRs not replayed");
        break;
      case ReadStatus::error:
        res.degraded = true;
        f.warn("cannot read the firmware event log " + cfg_.event_log_path + ": " + err);
        break;
      case ReadStatus::too_big:
        f.fail("firmware event log " + cfg_.event_log_path + " exceeds " +
               std::to_string(kMaxTcgLogBytes) + " bytes");
        break;
      case ReadStatus::ok: {
        const TcgParseResult parsed = parse_tcg_event_log(bytes);
        if (!parsed.ok) {
          f.fail("firmware event log corrupted: " + parsed.reason);
          break;
        }
        auto replay = replay_tcg_event_log(parsed.log);
        if (!replay) {
          f.fail("firmware event log cannot be replayed: " + replay.error().message());
          break;
        }
        res.event_log_events = replay->events_replayed;
        bool compared = false;
        for (const auto& [bank, values] : replay->pcrs) {
          auto tb = tpm.find(bank);
          if (tb == tpm.end()) continue;
          compared = true;
          std::set<std::uint32_t> check(cfg_.firmware_pcrs.begin(), cfg_.firmware_pcrs.end());
          check.insert(replay->extended[bank].begin(), replay->extended[bank].end());
          for (auto idx : check) {
            if (idx > kMaxPcrIndex) continue;
            const Bytes& have = tb->second.at(idx);
            const Bytes& want = values.at(idx);
            if (have != want) {
              f.fail(pcr_name(bank, idx) + ": TPM value " + to_hex(have) +
                     " does not match the firmware event log replay " + to_hex(want) +
                     " — the log was tampered with or the boot differs");
            }
          }
        }
        if (!compared) f.warn("firmware event log has no bank in common with the TPM");
        break;
      }
    }
  }

  // 4. IMA log.
  if (!cfg_.ima_log_path.empty()) {
    std::string text, err;
    switch (read_file(cfg_.ima_log_path, 512u << 20, text, err)) {
      case ReadStatus::missing:
        break;  // IMA not enabled: nothing to replay
      case ReadStatus::error:
        res.degraded = true;
        f.warn("cannot read the IMA log " + cfg_.ima_log_path + ": " + err);
        break;
      case ReadStatus::too_big:
        f.fail("IMA log " + cfg_.ima_log_path + " is too large");
        break;
      case ReadStatus::ok: {
        // The PCRs were read before the log: the log may only have grown.
        const ImaParseResult parsed = parse_ima_log(text);
        if (!parsed.ok) {
          f.fail("IMA log corrupted: " + parsed.reason);
          break;
        }
        auto replay = replay_ima_log(parsed.entries, cfg_.ima_mode, &tpm);
        if (!replay) {
          f.fail("IMA log cannot be replayed: " + replay.error().message());
          break;
        }
        res.ima_entries = replay->entries;
        for (const auto& s : replay->skipped) f.warn(s);
        for (const auto& [bank, values] : replay->pcrs) {
          auto tb = tpm.find(bank);
          if (tb == tpm.end()) continue;
          for (const auto& [idx, want] : values) {
            auto m = replay->matched_prefix.find(bank);
            if (m == replay->matched_prefix.end() || !m->second.contains(idx)) {
              f.fail(pcr_name(bank, idx) + ": TPM value " + to_hex(tb->second.at(idx)) +
                     " does not match the IMA log replay " + to_hex(want) +
                     " (at any prefix of the log) — IMA log tampered with");
            }
          }
        }
        break;
      }
    }
  }
  return done();
}

}  // namespace portier::attest
