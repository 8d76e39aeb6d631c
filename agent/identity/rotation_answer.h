// The fleet's explicit mark on a refused key rotation (review finding
// REQ-33/2): gRPC trailing metadata `portier-rotation: not-recorded`, sent
// by the Enrolment service (tools/fleet/enrolment/enrolment_service.cc)
// only where it read its registry and the rotation's new key is not there.
// The terminal (enrolment_client.cc, rotate_once) destroys its pending key
// on that mark only; any other failure, whatever its status code, leaves
// the rotation unknown (it keeps holding and asks again).
#pragma once

namespace portier::identity {

inline constexpr char kRotationAnswerKey[] = "portier-rotation";
inline constexpr char kNotRecorded[] = "not-recorded";

}  // namespace portier::identity
