#include "tools/fleet/enrolment/issued_key_record.h"

namespace portier::fleet {

Result<void> record_issued(FleetStore& store, const IssuedKey& k) {
  auto key = crypto::PublicKey::from_pem(k.public_key_pem);
  if (!key) return std::unexpected(key.error());
  switch (k.kind) {
    case IssuedKey::Kind::enrolled: {
      Terminal t;
      t.id = k.terminal_id;
      t.public_key_pem = k.public_key_pem;
      t.key_algorithm = std::string(crypto::name(key->type()));
      t.registered = std::chrono::system_clock::now();
      auto added = store.add_terminal(t);
      if (added || added.error().code != Errc::already_exists) return added;
      auto known = store.terminal(k.terminal_id);
      if (!known) return std::unexpected(known.error());
      if (known->public_key_pem == k.public_key_pem) return {};
      // A rotated terminal enrolling again (its certificate expired) before
      // its new key signed anything the fleet received: that key is the
      // certified next one.
      auto keys = store.keys(k.terminal_id);
      if (!keys) return std::unexpected(keys.error());
      for (const auto& key : *keys) {
        if (key.from_sequence == 0 && key.public_key_pem == k.public_key_pem) return {};
      }
      return fail(Errc::already_exists, "fleet store", "terminal " + k.terminal_id,
                  "is registered with another key");
    }
    case IssuedKey::Kind::renewed:
      return {};
    case IssuedKey::Kind::rotated: {
      auto next = store.set_next_key(k.terminal_id, k.public_key_pem, k.cutover);
      if (!next && next.error().code == Errc::failed_precondition) {
        // The chain holds envelopes past the cutover under the old key: it
        // was used by someone else. Recorded; the rotation is refused.
        (void)store.add_incident(Incident{0, k.terminal_id, std::chrono::system_clock::now(),
                                          "retired key", k.cutover, next.error().why});
      }
      return next;
    }
  }
  return {};
}

}  // namespace portier::fleet
