// The answers of Portier's BlueZ pairing agent (org.bluez.Agent1), without
// D-Bus: BlueZ asks the agent for a PIN code, a passkey or a confirmation
// while a pairing runs, and the agent answers from what the app that asked
// for the pairing gave in its pair action (params pin, passkey, confirm).
//
// Only pairings Portier started are answered: a request for a device with
// no pair action in flight (a remote device trying to pair by itself) is
// rejected, as is every AuthorizeService (BlueZ asks it only for devices
// that are not trusted). The secrets are kept only while their pairing
// runs and never appear in a reason or a log.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/result.h"

namespace portier::drivers {

struct PairingSecrets {
  std::optional<std::string> pin;        // legacy PIN code: 1..16 characters
  std::optional<std::uint32_t> passkey;  // passkey entry: 0..999999
  std::optional<std::uint32_t> confirm;  // numeric comparison: the 6 digits the device shows
};

// The pair action's params: "pin", "passkey", "confirm" (each optional;
// other keys are refused). Errors name the key and the rule, never the value.
Result<PairingSecrets> parse_pairing_params(const std::map<std::string, std::string>& params);

struct AgentRequest {
  enum class Kind {
    release,                // BlueZ dropped the agent
    request_pin_code,       // -> reply.pin
    display_pin_code,       // pin: show it to the user
    request_passkey,        // -> reply.passkey
    display_passkey,        // passkey: show it to the user
    request_confirmation,   // passkey: does the device show the same?
    request_authorization,  // "just works" pairing: may it go ahead?
    authorize_service,      // uuid: may this untrusted device use a service?
    cancel,                 // BlueZ gave up the request in progress
  };
  Kind kind = Kind::cancel;
  std::string device;  // BlueZ object path
  std::string pin;
  std::uint32_t passkey = 0;
  std::string uuid;
};

struct AgentReply {
  bool ok = true;
  std::string error;    // D-Bus error name when !ok: org.bluez.Error.Rejected / Canceled
  std::string message;  // why, for the caller of the pair action
  std::string pin;
  std::uint32_t passkey = 0;
};

class PairingAgent {
 public:
  // The pair action for `device` starts: a token for end(), or 0 when a
  // pairing with that device is already in progress (one at a time, so one
  // app's secrets never answer another app's pairing).
  std::uint64_t begin(const std::string& device, PairingSecrets secrets);
  // That pair action has ended: returns why the agent refused a request
  // during it ("" when it did not), so that the action's error can say what
  // the device wanted. A stale token changes nothing.
  std::string end(const std::string& device, std::uint64_t token);
  bool pairing(const std::string& device) const { return pending_.count(device) > 0; }

  AgentReply answer(const AgentRequest& request);

 private:
  struct Pending {
    PairingSecrets secrets;
    std::string refusal;
    std::uint64_t token = 0;
  };
  AgentReply refuse(Pending* p, std::string message);
  std::map<std::string, Pending> pending_;
  std::uint64_t next_token_ = 1;
};

}  // namespace portier::drivers
