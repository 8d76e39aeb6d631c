#include "pcsc/reader_ids.h"

#include <utility>

namespace portier::drivers {

ReaderIds::ReaderIds(std::string prefix, const std::map<std::string, std::string>& pinned)
    : prefix_(std::move(prefix)), pinned_ids_(pinned) {
  for (const auto& [id, reader] : pinned) pinned_by_name_[reader] = id;
}

std::optional<std::string> ReaderIds::pinned_id(const std::string& reader) const {
  if (auto it = pinned_by_name_.find(reader); it != pinned_by_name_.end()) return it->second;
  return std::nullopt;
}

std::string ReaderIds::id_for(const std::string& reader) {
  if (auto p = pinned_id(reader)) return *p;
  if (auto it = assigned_.find(reader); it != assigned_.end()) return it->second;
  std::string id;
  do {
    id = prefix_ + std::to_string(next_++);
  } while (pinned_ids_.contains(id));
  assigned_.emplace(reader, id);
  return id;
}

}  // namespace portier::drivers
