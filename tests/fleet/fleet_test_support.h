// What the fleet's tests share: a temp dir, a simulated terminal that seals
// and signs real envelopes (EnvelopeSealer, sign_envelope, sign_batch with a
// real key of each type), and a registered store.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "agent/envelope/envelope_chain.h"
#include "portier/v1/command.pb.h"
#include "portier/v1/telemetry.pb.h"
#include "support/temp_dir.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::fleet::testing {

inline const auto kT0 = std::chrono::system_clock::time_point{} + std::chrono::seconds(1796500000);

using TempDir = test_support::TempDir;

// A terminal as the fleet sees it from outside: its key and its chain.
struct SimTerminal {
  SimTerminal(std::string id_, crypto::KeyType type)
      : id(std::move(id_)), key(*crypto::PrivateKey::generate(type)), sealer(id, type, {}) {}

  envelope::EnvelopeSealer::Sealed seal(v1::PayloadType type, const std::string& payload,
                                        bool sign = true) {
    auto s = sealer.seal(type, payload, kT0 + std::chrono::seconds(sealer.state().next_sequence));
    EXPECT_TRUE(s) << s.error().message();
    if (sign) {
      EXPECT_TRUE(envelope::sign_envelope(s->envelope, key));
    }
    return std::move(*s);
  }
  envelope::EnvelopeSealer::Sealed health(int n, bool sign = true) {
    v1::HealthReport h;
    h.mutable_health()->set_state(v1::Health::OK);
    h.mutable_health()->add_reasons("report " + std::to_string(n));
    return seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), sign);
  }
  envelope::EnvelopeSealer::Sealed audit(std::uint64_t first, std::vector<std::string> lines,
                                         bool sign = true) {
    v1::AuditBatch b;
    b.set_first_record(first);
    for (auto& l : lines) b.add_records(l);
    return seal(v1::PAYLOAD_AUDIT, b.SerializeAsString(), sign);
  }
  std::string batch(std::uint64_t first, std::uint64_t last, const crypto::Bytes& head) {
    auto b = envelope::sign_batch(id, first, last, head, key);
    EXPECT_TRUE(b) << b.error().message();
    return b->SerializeAsString();
  }
  std::string public_pem() const { return *key.public_key()->to_pem(); }

  std::string id;
  crypto::PrivateKey key;
  envelope::EnvelopeSealer sealer;
};

inline std::string bytes(const envelope::EnvelopeSealer::Sealed& s) {
  return s.envelope.SerializeAsString();
}

inline void register_terminal(FleetStore& store, const SimTerminal& t) {
  Terminal r;
  r.id = t.id;
  r.public_key_pem = t.public_pem();
  r.key_algorithm = std::string(crypto::name(t.key.type()));
  r.registered = kT0;
  ASSERT_TRUE(store.add_terminal(r));
}

// The sequences stored for a terminal, in order.
inline std::vector<std::uint64_t> stored_sequences(FleetStore& store, const std::string& id) {
  std::vector<std::uint64_t> out;
  auto rows = store.envelopes(id, 0, 1000000);
  EXPECT_TRUE(rows) << rows.error().message();
  for (auto& r : *rows) out.push_back(r.sequence);
  return out;
}

inline std::vector<std::string> incident_kinds(FleetStore& store, const std::string& id) {
  std::vector<std::string> out;
  auto all = store.incidents(id, 100000);
  EXPECT_TRUE(all) << all.error().message();
  for (auto& i : *all) out.push_back(i.kind);
  return out;
}

// How many occurrences of `kind` the terminal's incident rows stand for
// (a tallied row counts several).
inline std::uint64_t incident_total(FleetStore& store, const std::string& id,
                                    const std::string& kind) {
  std::uint64_t n = 0;
  auto all = store.incidents(id, 100000);
  EXPECT_TRUE(all) << all.error().message();
  if (all) {
    for (auto& i : *all) n += i.kind == kind ? i.count : 0;
  }
  return n;
}

inline std::vector<std::uint64_t> seqs(std::uint64_t from, std::uint64_t to) {
  std::vector<std::uint64_t> out;
  for (auto s = from; s <= to; ++s) out.push_back(s);
  return out;
}

}  // namespace portier::fleet::testing
