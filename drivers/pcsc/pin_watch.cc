#include "pcsc/pin_watch.h"

#include <algorithm>
#include <set>
#include <utility>

namespace portier::drivers {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

AlarmData removed_alarm(const std::string& expected, bool at_start) {
  AlarmData a;
  a.code = "device_removed";
  a.message = at_start ? "pinned reader \"" + expected + "\" is not present"
                       : "pinned reader \"" + expected + "\" was removed";
  a.details = {{"expected", expected}};
  return a;
}

AlarmData substituted_alarm(const std::string& expected, const std::vector<std::string>& actual) {
  AlarmData a;
  a.code = "device_substituted";
  a.message = "pinned reader \"" + expected + "\" is missing and another reader is present (" +
              joined(actual) + ")";
  a.details = {{"expected", expected}, {"actual", joined(actual)}};
  return a;
}

}  // namespace

std::map<std::string, PinState> evaluate_pins(const std::map<std::string, std::string>& pinned,
                                              const std::vector<std::string>& present) {
  std::set<std::string> expected;
  for (const auto& [id, name] : pinned) expected.insert(name);
  std::vector<std::string> unexpected;
  for (const auto& name : present) {
    if (!expected.contains(name)) unexpected.push_back(name);
  }
  std::sort(unexpected.begin(), unexpected.end());
  unexpected.erase(std::unique(unexpected.begin(), unexpected.end()), unexpected.end());

  std::map<std::string, PinState> out;
  for (const auto& [id, name] : pinned) {
    PinState s;
    if (std::find(present.begin(), present.end(), name) != present.end()) {
      s.status = PinStatus::present;
    } else if (!unexpected.empty()) {
      s.status = PinStatus::substituted;
      s.substitutes = unexpected;
    }
    out.emplace(id, std::move(s));
  }
  return out;
}

PinWatch::PinWatch(std::map<std::string, std::string> pinned) : pinned_(std::move(pinned)) {}

std::vector<PinWatch::Change> PinWatch::update(const std::vector<std::string>& present) {
  std::vector<Change> changes;
  for (auto& [id, now] : evaluate_pins(pinned_, present)) {
    auto before = last_.find(id);
    const bool first = before == last_.end();
    if (!first && before->second == now) continue;
    Change c{id, now, std::nullopt};
    const std::string& expected = pinned_.at(id);
    if (now.status == PinStatus::missing &&
        (first || before->second.status == PinStatus::present)) {
      c.alarm = removed_alarm(expected, first);
    } else if (now.status == PinStatus::substituted) {
      c.alarm = substituted_alarm(expected, now.substitutes);
    }
    last_[id] = now;
    changes.push_back(std::move(c));
  }
  return changes;
}

}  // namespace portier::drivers
