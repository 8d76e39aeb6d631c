// Hands every record an outbox holds, oldest first, to a portier-fleet
// receiver on a fresh store (the terminal "T-1" registered with `key`), as
// the link would send them, and checks that the fleet's chain reaches the
// last record with nothing refused: the only incidents are the drops the
// terminal told of, and the gaps and reorderings they explain.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "agent/outbox/outbox.h"
#include "common/crypto/keys.h"
#include "portier/v1/envelope.pb.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::management::test {

// `notices`: how many of the records were drop notices.
inline void expect_fleet_takes_outbox(outbox::Outbox& box, const crypto::PublicKey& key,
                                      const std::string& db, int* notices) {
  *notices = 0;
  auto store = fleet::SqliteFleetStore::open(db);
  ASSERT_TRUE(store) << store.error().message();
  fleet::Terminal term;
  term.id = "T-1";
  term.public_key_pem = *key.to_pem();
  term.key_algorithm = std::string(crypto::name(key.type()));
  ASSERT_TRUE((*store)->add_terminal(term));
  fleet::Receiver receiver(**store);
  auto records = box.oldest(100000);
  ASSERT_TRUE(records);
  ASSERT_FALSE(records->empty());
  for (auto& r : *records) {
    v1::Envelope env;
    v1::EnvelopeBody body;
    ASSERT_TRUE(env.ParseFromString(r.envelope) && body.ParseFromString(env.body()));
    *notices += body.payload_type() == v1::PAYLOAD_DROP;
    auto got = receiver.receive("T-1", "envelope", r.envelope, std::chrono::system_clock::now());
    EXPECT_TRUE(got || got.error().code == Errc::failed_precondition)
        << r.sequence << ": " << got.error().message();
  }
  auto counts = (*store)->counts("T-1");
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->last_sequence, records->back().sequence) << "the chain reached the end";
  auto incidents = (*store)->incidents("T-1", 1000);
  ASSERT_TRUE(incidents);
  for (auto& i : *incidents) {
    // Told, followed, held while the notice was on its way: nothing refused.
    EXPECT_TRUE(i.kind == "dropped by terminal" || i.kind == "gap" || i.kind == "reordered")
        << i.kind << ": " << i.detail;
  }
}

}  // namespace portier::management::test
