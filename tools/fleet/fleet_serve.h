// portier-fleet's long-running side and its command sender: `serve` runs
// the transports (MQTT intake, gRPC endpoint) on the store, the Enrolment
// service (--enrol) and delivers queued commands; `send` signs a command
// and queues it in the spool; `expect` provisions a serial for enrolment.
#pragma once

#include "tools/fleet/fleet_args.h"
#include "tools/fleet/fleet_store.h"

namespace portier::fleet {

int serve(FleetStore& store, const FleetArgs& args);
int send(FleetStore& store, const FleetArgs& args);
int results(FleetStore& store, const FleetArgs& args);
// Provisioning for enrolment: a serial the fleet expects, with its secret.
int expect(const FleetArgs& args);

}  // namespace portier::fleet
