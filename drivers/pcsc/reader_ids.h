// Device ids of readers: pinned ones from config, the others <prefix><N>,
// N counting up from 0 in the order readers are first seen and skipping
// the pinned ids. A reader name keeps its id for the life of the object
// (the run), also across removal and re-insertion.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace portier::drivers {

class ReaderIds {
 public:
  // `pinned`: device id -> reader name.
  ReaderIds(std::string prefix, const std::map<std::string, std::string>& pinned);

  // The id of `reader`, assigning the next free one on first sight.
  std::string id_for(const std::string& reader);
  // The pinned id of `reader`, if config pins it.
  std::optional<std::string> pinned_id(const std::string& reader) const;

 private:
  std::string prefix_;
  std::map<std::string, std::string> pinned_by_name_;  // reader -> id
  std::map<std::string, std::string> pinned_ids_;      // id -> reader
  std::map<std::string, std::string> assigned_;        // reader -> id
  unsigned next_ = 0;
};

}  // namespace portier::drivers
