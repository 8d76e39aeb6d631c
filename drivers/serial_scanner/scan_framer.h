// Splits the byte stream of a serial scanner into frames. Pure: no I/O, no
// threads. One framer per device; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "driver.h"
#include "serial_scanner/scanner_config.h"

namespace portier::drivers {

// One output of the framer: the bytes of a complete frame (suffix removed,
// may contain NUL and any other byte) or a fault about the stream.
using FramerItem = std::variant<std::string, FaultData>;

class ScanFramer {
 public:
  // `max_frame` bounds the bytes before the suffix. A longer frame yields one
  // FaultData{"frame_too_long", ...} (never its bytes); its remaining bytes up
  // to the next suffix are discarded, then framing resumes normally.
  ScanFramer(FrameSuffix suffix, std::size_t max_frame);

  // Consumes `bytes` (any split of the stream is fine) and returns the frames
  // and faults they complete, in stream order. Empty frames are dropped.
  std::vector<FramerItem> feed(std::string_view bytes);

  // Forgets a partial frame, e.g. after the device was reconnected.
  void reset();

  std::size_t max_frame() const { return max_frame_; }

 private:
  void data_byte(char c, std::vector<FramerItem>& out);
  void end_of_frame(std::vector<FramerItem>& out);

  FrameSuffix suffix_;
  std::size_t max_frame_;
  std::string buf_;          // capacity reserved once: never grows past max_frame
  bool pending_cr_ = false;  // CRLF mode: saw CR, deciding whether LF follows
  bool discarding_ = false;  // inside an over-long frame
};

}  // namespace portier::drivers
