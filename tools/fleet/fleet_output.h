// How portier-fleet prints: readable text, or one JSON object (--json)
// built with JsonObject; protobuf payloads in their canonical JSON.
#pragma once

#include <google/protobuf/message.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/hex.h"

namespace portier::fleet {

std::string json_string(const std::string& s);  // quoted and escaped
std::string json_message(const google::protobuf::Message& m);
// "2026-12-06T08:30:00.123Z"; "" for the epoch (never).
std::string format_time(std::chrono::system_clock::time_point t);
// Printable for a terminal: control characters as \xNN.

class JsonObject {
 public:
  JsonObject& add(const std::string& key, const std::string& value);
  JsonObject& add(const std::string& key, const char* value) {
    return add(key, std::string(value));
  }
  JsonObject& add(const std::string& key, std::uint64_t value);
  JsonObject& add(const std::string& key, bool value);
  JsonObject& add_raw(const std::string& key, const std::string& json);  // already JSON
  std::string str() const { return "{" + body_ + "}"; }

 private:
  std::string body_;
};

std::string json_array(const std::vector<std::string>& items);  // each already JSON

}  // namespace portier::fleet
