// Readers pinned by config to device ids, and the alarms their absence or
// replacement raises (REQ-3 removal, REQ-4 substitution).
//
// A pinned id is
//   present      when its expected reader is listed by pcscd;
//   substituted  when it is not, but some reader that no pin expects is
//                (a different reader in the place of the pinned one);
//   missing      otherwise.
// Alarms: device_removed when a pin becomes missing (also at the first
// update, when the reader is absent from the start), device_substituted
// when it becomes substituted or its substitutes change. Going from
// substituted to missing raises nothing new (the reader was already
// reported gone), nor does coming back.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "driver.h"

namespace portier::drivers {

enum class PinStatus { present, missing, substituted };

struct PinState {
  PinStatus status = PinStatus::missing;
  std::vector<std::string> substitutes;  // unexpected readers present (substituted only)
  bool operator==(const PinState&) const = default;
};

// `pinned`: device id -> expected reader name; `present`: readers listed now.
std::map<std::string, PinState> evaluate_pins(const std::map<std::string, std::string>& pinned,
                                              const std::vector<std::string>& present);

class PinWatch {
 public:
  struct Change {
    std::string id;
    PinState state;
    std::optional<AlarmData> alarm;
  };

  explicit PinWatch(std::map<std::string, std::string> pinned);

  // The pins whose state differs from the previous update (every pin on the
  // first one), each with the alarm the change raises, if any.
  std::vector<Change> update(const std::vector<std::string>& present);
  const std::map<std::string, std::string>& pinned() const { return pinned_; }

 private:
  std::map<std::string, std::string> pinned_;
  std::map<std::string, PinState> last_;
};

}  // namespace portier::drivers
