#include "serial_scanner/scan_framer.h"

#include <utility>

namespace portier::drivers {

ScanFramer::ScanFramer(FrameSuffix suffix, std::size_t max_frame)
    : suffix_(suffix), max_frame_(max_frame) {
  buf_.reserve(max_frame_);
}

void ScanFramer::reset() {
  buf_.clear();
  pending_cr_ = false;
  discarding_ = false;
}

std::vector<FramerItem> ScanFramer::feed(std::string_view bytes) {
  std::vector<FramerItem> out;
  for (char c : bytes) {
    switch (suffix_) {
      case FrameSuffix::cr:
        if (c == '\r') {
          end_of_frame(out);
        } else {
          data_byte(c, out);
        }
        break;
      case FrameSuffix::lf:
        if (c == '\n') {
          end_of_frame(out);
        } else {
          data_byte(c, out);
        }
        break;
      case FrameSuffix::crlf:
        if (pending_cr_) {
          pending_cr_ = false;
          if (c == '\n') {
            end_of_frame(out);
            break;
          }
          data_byte('\r', out);  // a lone CR is data
        }
        if (c == '\r') {
          pending_cr_ = true;
        } else {
          data_byte(c, out);
        }
        break;
    }
  }
  return out;
}

void ScanFramer::data_byte(char c, std::vector<FramerItem>& out) {
  if (discarding_) return;
  if (buf_.size() >= max_frame_) {
    buf_.clear();
    discarding_ = true;
    out.emplace_back(FaultData{
        "frame_too_long", "frame longer than " + std::to_string(max_frame_) + " bytes discarded"});
    return;
  }
  buf_.push_back(c);
}

void ScanFramer::end_of_frame(std::vector<FramerItem>& out) {
  if (discarding_) {
    discarding_ = false;
    return;
  }
  if (buf_.empty()) return;
  out.emplace_back(std::in_place_type<std::string>, buf_);
  buf_.clear();  // keeps the reserved capacity
}

}  // namespace portier::drivers
