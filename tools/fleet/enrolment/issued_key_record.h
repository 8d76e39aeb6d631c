// What the fleet's store must know of a key the enrolment service
// certifies (EnrolmentService::on_issued), before the terminal gets the
// certificate: the receiver must know a terminal's key before its
// envelopes arrive. An enrolled terminal is registered with its key (again
// the same, or the certified next key of a rotation enrolling again after
// its certificate expired: nothing; another key under its id: refused); a
// rotated key becomes the terminal's next key from the rotation's cutover
// (refused, and an incident, when the chain already holds envelopes the
// old key signed at or after it).
#pragma once

#include "tools/fleet/enrolment/enrolment_service.h"
#include "tools/fleet/fleet_store.h"

namespace portier::fleet {

Result<void> record_issued(FleetStore& store, const IssuedKey& k);

}  // namespace portier::fleet
