// The gateway's own types as portier.v1 messages: only the gRPC service
// (and its tests) use this; the hub and its parts never see protobuf.
#pragma once

#include "device_hub.h"
#include "device_view.h"
#include "health_state.h"
#include "lease_table.h"
#include "portier/v1/gateway.pb.h"

namespace portier::gateway {

v1::Device to_proto(const DeviceView& device);
v1::PeripheralEvent to_proto(const DeviceEventRecord& event);
v1::DeviceChange to_proto(const DeviceChangeRecord& change);
void to_proto(const Lease& lease, v1::Lease* out);
void to_proto(const HealthReport& report, v1::Health* out);
// The verdict and its reasons only (the management link's telemetry).
void to_proto(const HealthState& health, v1::Health* out);
void to_proto(std::chrono::system_clock::time_point time, google::protobuf::Timestamp* out);

}  // namespace portier::gateway
