#include "pairing_agent.h"

#include <charconv>

namespace portier::drivers {
namespace {

constexpr const char* kRejected = "org.bluez.Error.Rejected";

Result<std::uint32_t> six_digits_or_fewer(const std::string& key, const std::string& v) {
  std::uint32_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || v.size() > 6 || ec != std::errc() || end != v.data() + v.size()) {
    return fail(Errc::invalid_argument, "pair", "params." + key, "must be 0..999999 (digits only)");
  }
  return n;
}

}  // namespace

Result<PairingSecrets> parse_pairing_params(const std::map<std::string, std::string>& params) {
  PairingSecrets s;
  for (const auto& [k, v] : params) {
    if (k == "pin") {
      if (v.empty() || v.size() > 16) {
        return fail(Errc::invalid_argument, "pair", "params.pin", "must be 1..16 characters");
      }
      for (unsigned char c : v) {
        if (c < 0x20 || c > 0x7e) {
          return fail(Errc::invalid_argument, "pair", "params.pin",
                      "must be printable ASCII characters");
        }
      }
      s.pin = v;
    } else if (k == "passkey" || k == "confirm") {
      auto n = six_digits_or_fewer(k, v);
      if (!n) return std::unexpected(n.error());
      (k == "passkey" ? s.passkey : s.confirm) = *n;
    } else {
      return fail(Errc::invalid_argument, "pair", "params." + k,
                  "unknown parameter (pair takes pin, passkey, confirm)");
    }
  }
  return s;
}

std::uint64_t PairingAgent::begin(const std::string& device, PairingSecrets secrets) {
  if (pending_.count(device)) return 0;
  const std::uint64_t token = next_token_++;
  pending_[device] = Pending{std::move(secrets), {}, token};
  return token;
}

std::string PairingAgent::end(const std::string& device, std::uint64_t token) {
  auto it = pending_.find(device);
  if (it == pending_.end() || it->second.token != token) return {};
  std::string why = std::move(it->second.refusal);
  pending_.erase(it);
  return why;
}

AgentReply PairingAgent::refuse(Pending* p, std::string message) {
  if (p) p->refusal = message;
  AgentReply r;
  r.ok = false;
  r.error = kRejected;
  r.message = std::move(message);
  return r;
}

AgentReply PairingAgent::answer(const AgentRequest& q) {
  using K = AgentRequest::Kind;
  if (q.kind == K::release) {
    pending_.clear();
    return {};
  }
  auto it = pending_.find(q.device);
  Pending* p = it == pending_.end() ? nullptr : &it->second;
  if (q.kind == K::cancel) return {};
  if (q.kind == K::authorize_service) {
    return refuse(p, "the device is not trusted: a maintenance app must trust it first");
  }
  if (!p) return refuse(nullptr, "no pairing with this device was started through Portier");
  switch (q.kind) {
    case K::request_pin_code:
      if (!p->secrets.pin) {
        return refuse(p, "the device asks for a PIN code: give it as params pin=...");
      }
      {
        AgentReply r;
        r.pin = *p->secrets.pin;
        return r;
      }
    case K::request_passkey:
      if (!p->secrets.passkey) {
        return refuse(p,
                      "the device asks for a passkey (the 6 digits it shows): give it as params "
                      "passkey=...");
      }
      {
        AgentReply r;
        r.passkey = *p->secrets.passkey;
        return r;
      }
    case K::request_confirmation:
      if (!p->secrets.confirm) {
        return refuse(p,
                      "the device asks to confirm the 6 digits it shows: give them as params "
                      "confirm=...");
      }
      if (*p->secrets.confirm != q.passkey) {
        return refuse(p, "the digits given in confirm are not those the device shows");
      }
      return {};
    case K::request_authorization:
      return {};  // "just works": the pair action itself is the consent
    case K::display_pin_code:
    case K::display_passkey:
      // Typing on the remote keyboard is up to its user; nothing to show here.
      return {};
    default:
      return refuse(p, "unexpected request");
  }
}

}  // namespace portier::drivers
