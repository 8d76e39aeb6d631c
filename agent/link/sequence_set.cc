// Sequences as ranges (see sequence_set.h).
#include "agent/link/sequence_set.h"

#include <algorithm>
#include <limits>

namespace portier::link {

void SequenceSet::add(std::uint64_t first, std::uint64_t last) {
  if (last < first) return;
  // Merge with every range that overlaps or touches first..last.
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second == std::numeric_limits<std::uint64_t>::max() || prev->second + 1 >= first) {
      it = prev;
    }
  }
  while (it != ranges_.end() &&
         (last == std::numeric_limits<std::uint64_t>::max() || it->first <= last + 1)) {
    first = std::min(first, it->first);
    last = std::max(last, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(first, last);
}

void SequenceSet::remove(std::uint64_t first, std::uint64_t last) {
  if (last < first) return;
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin()) --it;
  while (it != ranges_.end() && it->first <= last) {
    const auto [a, b] = *it;
    if (b < first) {
      ++it;
      continue;
    }
    it = ranges_.erase(it);
    if (a < first) ranges_.emplace(a, first - 1);
    if (b > last) {
      ranges_.emplace(last + 1, b);
      break;
    }
  }
}

bool SequenceSet::intersects(std::uint64_t first, std::uint64_t last) const {
  if (last < first) return false;
  auto it = ranges_.upper_bound(last);  // the first range starting after last
  if (it == ranges_.begin()) return false;
  return std::prev(it)->second >= first;
}

std::vector<SequenceRange> SequenceSet::overlap(std::uint64_t first, std::uint64_t last) const {
  std::vector<SequenceRange> out;
  if (last < first) return out;
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin()) --it;
  for (; it != ranges_.end() && it->first <= last; ++it) {
    if (it->second < first) continue;
    out.push_back({std::max(first, it->first), std::min(last, it->second)});
  }
  return out;
}

}  // namespace portier::link
