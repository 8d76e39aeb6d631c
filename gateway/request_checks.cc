#include "request_checks.h"

#include "common/device_id.h"

namespace portier::gateway {

grpc::Status check_device_id(const std::string& id) {
  if (valid_device_id(id)) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "device_id must be 1-" + std::to_string(kMaxIdLength) +
                          " characters of A-Z a-z 0-9 - _ . (got " + std::to_string(id.size()) +
                          " bytes)");
}

grpc::Status check_length(const char* what, const std::string& value, std::size_t max) {
  if (value.size() <= max) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      std::string(what) + " of " + std::to_string(value.size()) +
                          " bytes; at most " + std::to_string(max));
}

}  // namespace portier::gateway
