// How portierctl prints: readable text, or one JSON object per line (--json).
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "portier/v1/gateway.pb.h"

namespace portier::ctl {

std::string to_json_line(const google::protobuf::Message& m);
std::string format_device(const v1::Device& d);
std::string format_event(const v1::PeripheralEvent& e);
std::string format_change(const v1::DeviceChange& c);
std::string format_health(const v1::Health& h);
std::string hex(const std::string& bytes);  // uppercase, no separators
std::string format_time(const google::protobuf::Timestamp& t);

}  // namespace portier::ctl
