// What the fleet knows of each device it expects to enrol (REQ-33: one
// device, one key): its hardware serial and enrolment secret, provisioned
// before the terminal first calls; once enrolled, the terminal id and the
// key it is bound to and the last certificate issued; and every refused
// attempt, kept for the operator. An interface so that the store behind it
// can change (sqlite_enrolment_registry.h is the one here).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto/bytes.h"
#include "common/result.h"

namespace portier::fleet {

struct EnrolmentRecord {
  std::string serial;
  crypto::Bytes secret;
  std::string terminal_id;        // empty until enrolled
  std::string public_key_pem;     // the enrolled key; empty until enrolled
  crypto::Bytes certificate;      // DER, the last issued; empty until enrolled
  bool rotation_allowed = false;  // the operator asked for a new key (one Renew may bring it)
  // The key the last rotation replaced (empty: none): a retry of that
  // rotation whose answer was lost gets the certificate already issued.
  std::string previous_key_pem;
  // A rotation the registry holds but the fleet's store may not know yet
  // (0: none): when its key change was written (Unix seconds). Until the
  // store took the new key (settle_rotation), nobody gets its certificate:
  // a retry of that rotation is answered "ask again".
  std::int64_t rotation_pending_since = 0;
};

struct EnrolmentRefusal {
  std::int64_t at_unix = 0;
  std::string serial;
  std::string terminal_id;
  std::string reason;
};

class EnrolmentRegistry {
 public:
  virtual ~EnrolmentRegistry() = default;
  // Provisioning: a serial the fleet expects, with its secret (already_exists
  // when the serial is known).
  virtual Result<void> expect(const std::string& serial, crypto::ByteView secret) = 0;
  virtual Result<std::optional<EnrolmentRecord>> find(const std::string& serial) = 0;
  // Binds a serial not yet enrolled to a terminal and key, atomically:
  // aborted when another enrolment bound it first.
  virtual Result<void> bind(const std::string& serial, const std::string& terminal_id,
                            const std::string& public_key_pem, crypto::ByteView certificate) = 0;
  // A renewal or a rotation: the enrolled serial's key and certificate now.
  // Clears rotation_allowed.
  virtual Result<void> update(const std::string& serial, const std::string& public_key_pem,
                              crypto::ByteView certificate) = 0;
  // Compare-and-swap of the enrolled serial's key, in one transaction: only
  // when the key is still `expected_pem` (aborted otherwise: another request
  // renewed or rotated it first), and for a new key only when the operator
  // allowed a rotation (permission_denied otherwise; the allowance is then
  // used up). `undo`: puts back a rotation whose new key could not be told
  // to the fleet's store (the allowance is open again). not_found when the
  // serial is not enrolled.
  // undo: back to the old key, the operator's allowance open again (the
  // fleet could not record the rotation); undo_closed: the same with the
  // allowance closed (the rotation was overtaken by the old key: someone
  // else may hold it, the operator looks before allowing another).
  // A rotation marks the row pending since `at_unix` (see
  // EnrolmentRecord::rotation_pending_since); an undo clears the mark; a
  // renewal leaves it.
  enum class KeyChange { renewal, rotation, undo, undo_closed };
  virtual Result<void> replace_key(const std::string& serial, const std::string& expected_pem,
                                   const std::string& public_key_pem, crypto::ByteView certificate,
                                   KeyChange change, std::int64_t at_unix) = 0;
  // The fleet's store took the rotation to `public_key_pem`: its mark of
  // "pending" goes (not_found when the serial's key is another one now).
  virtual Result<void> settle_rotation(const std::string& serial,
                                       const std::string& public_key_pem) = 0;
  // The operator's RotateDeviceKey: the next Renew of the enrolled
  // `terminal_id` may bring a new key (not_found when it is not enrolled).
  virtual Result<void> allow_rotation(const std::string& terminal_id) = 0;
  virtual Result<void> record_refusal(const EnrolmentRefusal& refusal) = 0;
  virtual Result<std::vector<EnrolmentRefusal>> refusals(const std::string& serial) = 0;
};

}  // namespace portier::fleet
