// Configuration of the Bluetooth driver (BlueZ over D-Bus).
#pragma once

#include <string>
#include <vector>

namespace portier::drivers {

struct BluetoothConfig {
  // "system" (BlueZ's bus on a terminal), "session", or a D-Bus address such
  // as "unix:path=/run/test/bus" (tests use a private bus).
  std::string bus = "system";
  // Device ids are "<id_prefix>-hci0" for adapters and
  // "<id_prefix>-112233445566" (address without colons, lowercase) for
  // remote devices.
  std::string id_prefix = "bt";
  // Remote devices Portier offers to apps. Each entry is a full address
  // ("11:22:33:44:55:66") or an OUI-style prefix ending in ":*"
  // ("11:22:33:*"); case does not matter. Empty: every address is allowed.
  std::vector<std::string> allowed_addresses;
  // Classes of device allowed. Each entry is a Class of Device in hex
  // ("0x000540": the major and minor device class must be equal; service
  // bits set in the entry must also be set on the device) or a major class
  // name: miscellaneous, computer, phone, network, audio_video, peripheral,
  // imaging, wearable, toy, health, uncategorized. Empty: every class is
  // allowed. A device without a Class property (most Bluetooth LE devices)
  // matches no entry.
  std::vector<std::string> allowed_classes;
  // Longest wait for one D-Bus call (BlueZ or the bus itself). A peer that
  // stops answering makes the call fail with Errc::unavailable after this.
  // Also caps an action together with ActionRequest::timeout.
  int call_timeout_ms = 5000;
  // Serve BlueZ's pairing agent (org.bluez.Agent1, capability
  // KeyboardDisplay, registered as the default agent): devices that want a
  // PIN code, a passkey or a confirmation get the one the pair action
  // carries; pairing requests Portier did not start are refused and raise a
  // pairing_refused alarm. Off: pairing registers no agent, so such devices
  // fail to pair.
  bool pairing_agent = true;
};

}  // namespace portier::drivers
