// The record of a key rotation whose answer is not known yet (review
// finding M4): the pending key (its public key, PEM) and the cutover, the
// first envelope sequence the new key signs. Written before the fleet is
// asked (replaced whole: temp, fsync, rename, 0600), removed once its
// answer is definitive (a certificate for the pending key installed, or
// the fleet's refusal: it recorded nothing). While it exists the old key
// signs nothing from the cutover on, across restarts: the fleet may have
// recorded the rotation and would refuse that as a retired key's.
//
// The file: "cutover N\n" then the pending key's public key PEM.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"

namespace portier::identity {

struct PendingRotation {
  std::uint64_t cutover = 0;
  std::string pending_key_pem;  // the public key the fleet is asked to certify
};

Result<void> save_pending_rotation(const std::string& path, const PendingRotation& rotation);
// nullopt when there is no record; a record that does not parse is an
// error naming the file (never taken as "none").
Result<std::optional<PendingRotation>> load_pending_rotation(const std::string& path);
// Removes the record (none: nothing to do), the directory synced.
Result<void> remove_pending_rotation(const std::string& path);

}  // namespace portier::identity
