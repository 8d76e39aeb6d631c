#include "agent/attest/tcg_event_log.h"

#include <cstdio>
#include <cstring>

namespace portier::attest {
namespace {

constexpr char kSpecIdSignature[16] = {'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ',
                                       'E', 'v', 'e', 'n', 't', '0', '3', '\0'};
constexpr char kStartupLocality[16] = {'S', 't', 'a', 'r', 't', 'u', 'p', 'L',
                                       'o', 'c', 'a', 'l', 'i', 't', 'y', '\0'};

// Bounds-checked little-endian reader; every read says what it reads so a
// failure names the field and its offset.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  std::size_t pos() const { return pos_; }
  std::size_t left() const { return b_.size() - pos_; }
  bool at_end() const { return pos_ == b_.size(); }
  bool failed() const { return failed_; }
  const std::string& reason() const { return reason_; }
  std::size_t fail_offset() const { return fail_at_; }

  bool u8(std::uint8_t& v, const char* what) {
    if (!need(1, what)) return false;
    v = static_cast<std::uint8_t>(b_[pos_]);
    pos_ += 1;
    return true;
  }
  bool u16(std::uint16_t& v, const char* what) {
    if (!need(2, what)) return false;
    v = static_cast<std::uint16_t>(byte(0) | byte(1) << 8);
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v, const char* what) {
    if (!need(4, what)) return false;
    v = byte(0) | byte(1) << 8 | byte(2) << 16 | static_cast<std::uint32_t>(byte(3)) << 24;
    pos_ += 4;
    return true;
  }
  bool bytes(std::vector<std::uint8_t>& out, std::size_t n, const char* what) {
    if (!need(n, what)) return false;
    out.assign(reinterpret_cast<const std::uint8_t*>(b_.data() + pos_),
               reinterpret_cast<const std::uint8_t*>(b_.data() + pos_ + n));
    pos_ += n;
    return true;
  }
  bool fail(std::size_t at, std::string why) {
    if (!failed_) {
      failed_ = true;
      fail_at_ = at;
      reason_ = "offset " + std::to_string(at) + ": " + std::move(why);
    }
    return false;
  }

 private:
  std::uint32_t byte(std::size_t i) const { return static_cast<std::uint8_t>(b_[pos_ + i]); }
  bool need(std::size_t n, const char* what) {
    if (failed_) return false;
    if (n > left()) {
      return fail(pos_, std::string("truncated: ") + what + " needs " + std::to_string(n) +
                            " bytes, " + std::to_string(left()) + " left");
    }
    return true;
  }

  std::string_view b_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  std::size_t fail_at_ = 0;
  std::string reason_;
};

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

bool check_pcr(Reader& r, std::size_t at, std::uint32_t pcr) {
  if (pcr > kMaxPcrIndex) {
    return r.fail(at, "PCR index " + std::to_string(pcr) + " out of range 0.." +
                          std::to_string(kMaxPcrIndex));
  }
  return true;
}

bool read_event_data(Reader& r, std::vector<std::uint8_t>& data) {
  const std::size_t at = r.pos();
  std::uint32_t size = 0;
  if (!r.u32(size, "event data size")) return false;
  if (size > kMaxTcgEventDataBytes) {
    return r.fail(at, "event data size " + std::to_string(size) + " exceeds the limit of " +
                          std::to_string(kMaxTcgEventDataBytes));
  }
  if (size > r.left()) {
    return r.fail(at, "event data size " + std::to_string(size) + " runs past the end (" +
                          std::to_string(r.left()) + " bytes left)");
  }
  return r.bytes(data, size, "event data");
}

// TCG_PCR_EVENT (SHA1 format).
bool read_sha1_event(Reader& r, TcgEvent& ev) {
  ev.offset = r.pos();
  if (!r.u32(ev.pcr, "PCR index") || !r.u32(ev.type, "event type")) return false;
  if (!check_pcr(r, ev.offset, ev.pcr)) return false;
  TcgDigest d;
  d.alg_id = kAlgSha1;
  if (!r.bytes(d.bytes, 20, "SHA1 digest")) return false;
  ev.digests.push_back(std::move(d));
  return read_event_data(r, ev.data);
}

bool parse_spec_id(Reader& r, const TcgEvent& ev, TcgEventLog& log) {
  // The Spec ID structure lives in ev.data; parse it with its own reader and
  // translate offsets back into log offsets.
  const std::size_t base = ev.offset + 32;  // pcr+type+digest[20]+size
  std::string_view d(reinterpret_cast<const char*>(ev.data.data()), ev.data.size());
  Reader s(d);
  std::vector<std::uint8_t> sig;
  auto fail = [&](std::size_t rel, std::string why) { return r.fail(base + rel, std::move(why)); };
  if (!s.bytes(sig, 16, "Spec ID signature")) return fail(s.fail_offset(), s.reason());
  std::uint32_t nalg = 0;
  if (!s.u32(log.platform_class, "platform class") || !s.u8(log.spec_minor, "spec minor") ||
      !s.u8(log.spec_major, "spec major") || !s.u8(log.spec_errata, "spec errata") ||
      !s.u8(log.uintn_size, "uintn size")) {
    return fail(s.fail_offset(), "Spec ID event: " + s.reason());
  }
  const std::size_t nalg_at = s.pos();
  if (!s.u32(nalg, "number of algorithms"))
    return fail(s.fail_offset(), "Spec ID event: " + s.reason());
  if (nalg == 0 || nalg > kMaxSpecAlgorithms) {
    return fail(nalg_at, "Spec ID event: number of algorithms " + std::to_string(nalg) +
                             " not in 1.." + std::to_string(kMaxSpecAlgorithms));
  }
  for (std::uint32_t i = 0; i < nalg; ++i) {
    TcgAlgorithm a;
    const std::size_t at = s.pos();
    if (!s.u16(a.alg_id, "algorithm id") || !s.u16(a.digest_size, "digest size")) {
      return fail(s.fail_offset(), "Spec ID event: " + s.reason());
    }
    if (a.digest_size == 0 || a.digest_size > 64) {
      return fail(at, "Spec ID event: digest size " + std::to_string(a.digest_size) + " of " +
                          tcg_alg_name(a.alg_id) + " not in 1..64");
    }
    const std::uint16_t known = tcg_alg_digest_size(a.alg_id);
    if (known != 0 && known != a.digest_size) {
      return fail(at, "Spec ID event: " + tcg_alg_name(a.alg_id) + " declared with digest size " +
                          std::to_string(a.digest_size) + ", expected " + std::to_string(known));
    }
    for (const auto& prev : log.algorithms) {
      if (prev.alg_id == a.alg_id) {
        return fail(at, "Spec ID event: algorithm " + tcg_alg_name(a.alg_id) + " listed twice");
      }
    }
    log.algorithms.push_back(a);
  }
  std::uint8_t vendor_size = 0;
  std::vector<std::uint8_t> vendor;
  if (!s.u8(vendor_size, "vendor info size") || !s.bytes(vendor, vendor_size, "vendor info")) {
    return fail(s.fail_offset(), "Spec ID event: " + s.reason());
  }
  return true;
}

// TCG_PCR_EVENT2 (crypto agile).
bool read_agile_event(Reader& r, const TcgEventLog& log, TcgEvent& ev) {
  ev.offset = r.pos();
  if (!r.u32(ev.pcr, "PCR index") || !r.u32(ev.type, "event type")) return false;
  if (!check_pcr(r, ev.offset, ev.pcr)) return false;
  const std::size_t count_at = r.pos();
  std::uint32_t count = 0;
  if (!r.u32(count, "digest count")) return false;
  if (count > log.algorithms.size()) {
    return r.fail(count_at, "digest count " + std::to_string(count) + " exceeds the " +
                                std::to_string(log.algorithms.size()) +
                                " algorithms of the Spec ID event");
  }
  ev.digests.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::size_t at = r.pos();
    TcgDigest d;
    if (!r.u16(d.alg_id, "digest algorithm")) return false;
    std::uint16_t size = 0;
    for (const auto& a : log.algorithms) {
      if (a.alg_id == d.alg_id) size = a.digest_size;
    }
    if (size == 0) {
      return r.fail(
          at, "digest algorithm " + tcg_alg_name(d.alg_id) + " not declared in the Spec ID event");
    }
    for (const auto& prev : ev.digests) {
      if (prev.alg_id == d.alg_id) {
        return r.fail(at, "digest algorithm " + tcg_alg_name(d.alg_id) + " twice in one event");
      }
    }
    if (!r.bytes(d.bytes, size, "digest")) return false;
    ev.digests.push_back(std::move(d));
  }
  return read_event_data(r, ev.data);
}

void note_startup_locality(const TcgEvent& ev, TcgEventLog& log) {
  if (ev.type == kEvNoAction && ev.pcr == 0 && ev.data.size() == 17 &&
      std::memcmp(ev.data.data(), kStartupLocality, 16) == 0) {
    log.has_startup_locality = true;
    log.startup_locality = ev.data[16];
  }
}

}  // namespace

TcgParseResult parse_tcg_event_log(std::string_view bytes) {
  TcgParseResult res;
  Reader r(bytes);
  auto failed = [&]() {
    res.ok = false;
    res.reason = r.reason();
    res.error_offset = r.fail_offset();
    res.log.events.clear();
    return res;
  };
  if (bytes.size() > kMaxTcgLogBytes) {
    r.fail(0, "log of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                  std::to_string(kMaxTcgLogBytes));
    return failed();
  }
  if (bytes.empty()) {
    r.fail(0, "empty event log");
    return failed();
  }
  TcgEvent first;
  if (!read_sha1_event(r, first)) return failed();
  const bool spec_id = first.type == kEvNoAction && first.pcr == 0 && first.data.size() >= 16 &&
                       std::memcmp(first.data.data(), kSpecIdSignature, 16) == 0;
  if (spec_id) {
    for (auto b : first.digests[0].bytes) {
      if (b != 0) {
        r.fail(first.offset + 8, "Spec ID event digest must be zero");
        return failed();
      }
    }
    res.log.crypto_agile = true;
    if (!parse_spec_id(r, first, res.log)) return failed();
    while (!r.at_end()) {
      if (res.log.events.size() >= kMaxTcgEvents) {
        r.fail(r.pos(), "more than " + std::to_string(kMaxTcgEvents) + " events");
        return failed();
      }
      TcgEvent ev;
      if (!read_agile_event(r, res.log, ev)) return failed();
      note_startup_locality(ev, res.log);
      res.log.events.push_back(std::move(ev));
    }
  } else {
    res.log.crypto_agile = false;
    res.log.algorithms = {{kAlgSha1, 20}};
    res.log.events.push_back(std::move(first));
    while (!r.at_end()) {
      if (res.log.events.size() >= kMaxTcgEvents) {
        r.fail(r.pos(), "more than " + std::to_string(kMaxTcgEvents) + " events");
        return failed();
      }
      TcgEvent ev;
      if (!read_sha1_event(r, ev)) return failed();
      note_startup_locality(ev, res.log);
      res.log.events.push_back(std::move(ev));
    }
  }
  res.ok = true;
  return res;
}

std::uint16_t tcg_alg_digest_size(std::uint16_t alg_id) {
  switch (alg_id) {
    case kAlgSha1:
      return 20;
    case kAlgSha256:
      return 32;
    case kAlgSha384:
      return 48;
    case kAlgSha512:
      return 64;
    case kAlgSm3_256:
      return 32;
    default:
      return 0;
  }
}

std::string tcg_alg_name(std::uint16_t alg_id) {
  switch (alg_id) {
    case kAlgSha1:
      return "sha1";
    case kAlgSha256:
      return "sha256";
    case kAlgSha384:
      return "sha384";
    case kAlgSha512:
      return "sha512";
    case kAlgSm3_256:
      return "sm3_256";
    default:
      return "alg " + hex32(alg_id);
  }
}

std::string tcg_event_type_name(std::uint32_t type) {
  switch (type) {
    case 0x0:
      return "EV_PREBOOT_CERT";
    case kEvPostCode:
      return "EV_POST_CODE";
    case 0x2:
      return "EV_UNUSED";
    case kEvNoAction:
      return "EV_NO_ACTION";
    case kEvSeparator:
      return "EV_SEPARATOR";
    case kEvAction:
      return "EV_ACTION";
    case 0x6:
      return "EV_EVENT_TAG";
    case 0x7:
      return "EV_S_CRTM_CONTENTS";
    case kEvSCrtmVersion:
      return "EV_S_CRTM_VERSION";
    case 0x9:
      return "EV_CPU_MICROCODE";
    case 0xA:
      return "EV_PLATFORM_CONFIG_FLAGS";
    case 0xB:
      return "EV_TABLE_OF_DEVICES";
    case 0xC:
      return "EV_COMPACT_HASH";
    case 0xD:
      return "EV_IPL";
    case 0xE:
      return "EV_IPL_PARTITION_DATA";
    case 0xF:
      return "EV_NONHOST_CODE";
    case 0x10:
      return "EV_NONHOST_CONFIG";
    case 0x11:
      return "EV_NONHOST_INFO";
    case 0x12:
      return "EV_OMIT_BOOT_DEVICE_EVENTS";
    case kEvEfiVariableDriverConfig:
      return "EV_EFI_VARIABLE_DRIVER_CONFIG";
    case 0x80000002:
      return "EV_EFI_VARIABLE_BOOT";
    case 0x80000003:
      return "EV_EFI_BOOT_SERVICES_APPLICATION";
    case 0x80000004:
      return "EV_EFI_BOOT_SERVICES_DRIVER";
    case 0x80000005:
      return "EV_EFI_RUNTIME_SERVICES_DRIVER";
    case 0x80000006:
      return "EV_EFI_GPT_EVENT";
    case 0x80000007:
      return "EV_EFI_ACTION";
    case 0x80000008:
      return "EV_EFI_PLATFORM_FIRMWARE_BLOB";
    case 0x80000009:
      return "EV_EFI_HANDOFF_TABLES";
    case 0x800000E0:
      return "EV_EFI_VARIABLE_AUTHORITY";
    default:
      return hex32(type);
  }
}

}  // namespace portier::attest
