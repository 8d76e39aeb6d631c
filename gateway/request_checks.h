// Length and character checks on request fields, made before a field is
// used, logged or audited: an over-long or malformed field is
// INVALID_ARGUMENT and never reaches the audit trail whole.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

namespace portier::gateway {

constexpr std::size_t kMaxIdLength = 64;  // ids of leases and actions too

// Device ids follow the config's id rules: 1-64 of A-Z a-z 0-9 - _ .
grpc::Status check_device_id(const std::string& id);
// Any other field: at most `max` bytes (`what` names it in the message).
grpc::Status check_length(const char* what, const std::string& value, std::size_t max);

}  // namespace portier::gateway
