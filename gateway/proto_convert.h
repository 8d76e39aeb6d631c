// The gateway's own types as portier.v1 messages: only the gRPC service
// (and its tests) use this; the hub and its parts never see protobuf.
#pragma once

#include "device_hub.h"
#include "device_view.h"
#include "lease_table.h"
#include "portier/v1/gateway.pb.h"

namespace portier::gateway {

v1::Device to_proto(const DeviceView& device);
v1::PeripheralEvent to_proto(const DeviceEventRecord& event);
v1::DeviceChange to_proto(const DeviceChangeRecord& change);
void to_proto(const Lease& lease, v1::Lease* out);
void to_proto(const HealthReport& report, v1::Health* out);

}  // namespace portier::gateway
