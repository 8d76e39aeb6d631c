// A set of envelope sequences kept as ranges (issue 10): what the terminal
// has sent and not yet deleted from its outbox, so that an acknowledgement
// naming none of it is known to be stale before its signature is checked
// (agent/management/outbox_sender.h). Runs are sent whole and deleted in
// order, so a few ranges hold any number of sequences.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "agent/link/ack_signing.h"

namespace portier::link {

class SequenceSet {
 public:
  void add(std::uint64_t first, std::uint64_t last);
  void remove(std::uint64_t first, std::uint64_t last);
  bool contains(std::uint64_t sequence) const { return intersects(sequence, sequence); }
  // Whether any of first..last is in the set.
  bool intersects(std::uint64_t first, std::uint64_t last) const;
  // The parts of first..last in the set, ascending.
  std::vector<SequenceRange> overlap(std::uint64_t first, std::uint64_t last) const;
  std::size_t ranges() const { return ranges_.size(); }
  bool empty() const { return ranges_.empty(); }
  void clear() { ranges_.clear(); }

 private:
  std::map<std::uint64_t, std::uint64_t> ranges_;  // first -> last, disjoint, not adjacent
};

}  // namespace portier::link
