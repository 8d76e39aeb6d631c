// A hostile broker between a terminal and the fleet: before every genuine
// message it delivers mangled copies of it (bits flipped, bytes cut or
// inserted, the signature stripped). Whatever it sends, the receiver never
// fails to answer, and the store ends up holding exactly the terminal's own
// bodies, each once, in order, with a chain that verifies.
#include <gtest/gtest.h>

#include <random>

#include "fleet_test_support.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/stored_chain_check.h"

namespace portier::fleet {
namespace {

using testing::kT0;
using testing::SimTerminal;

std::string mangle(const std::string& genuine, std::mt19937& rng) {
  std::string m = genuine;
  switch (rng() % 5) {
    case 0:
    case 1: {  // flip a few bits
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < flips && !m.empty(); ++i) {
        m[rng() % m.size()] ^= static_cast<char>(1u << (rng() % 8));
      }
      break;
    }
    case 2:  // cut
      m.resize(rng() % (m.size() + 1));
      break;
    case 3:  // insert a byte
      m.insert(m.begin() + static_cast<std::ptrdiff_t>(rng() % (m.size() + 1)),
               static_cast<char>(rng()));
      break;
    default: {  // strip the signature, if it is an envelope
      v1::Envelope e;
      if (e.ParseFromString(m) && e.has_signature()) {
        e.clear_signature();
        m = e.SerializeAsString();
      } else if (!m.empty()) {
        m[0] ^= 0x40;
      }
    }
  }
  return m;
}

class HostileBroker : public ::testing::TestWithParam<crypto::KeyType> {};

TEST_P(HostileBroker, MangledCopiesNeverReplaceOrDuplicateTheTerminalsRecords_REQ29) {
  testing::TempDir dir;
  auto store = SqliteFleetStore::open(dir.path() + "/fleet.db");
  ASSERT_TRUE(store);
  SimTerminal term("ATM-0001", GetParam());
  testing::register_terminal(**store, term);
  Receiver rx(**store);
  std::mt19937 rng(20261206u + static_cast<unsigned>(GetParam()));

  // 60 envelopes: runs of three unsigned ones covered by a batch, and
  // single signed ones in between.
  struct Message {
    std::string kind, bytes;
  };
  std::vector<Message> stream;
  std::vector<std::string> bodies;
  for (int i = 1; i <= 60; ++i) {
    const bool in_run = i % 4 != 0;
    auto s = term.audit(static_cast<std::uint64_t>(i), {"record " + std::to_string(i)}, !in_run);
    bodies.push_back(s.envelope.body());
    stream.push_back({"envelope", testing::bytes(s)});
    if (i % 4 == 3) stream.push_back({"batch", term.batch(s.sequence - 2, s.sequence, s.digest)});
  }
  for (auto& m : stream) {
    for (int k = 0; k < 5; ++k) {
      (void)rx.receive(term.id, m.kind, mangle(m.bytes, rng), kT0);  // any answer, no crash
    }
    auto r = rx.receive(term.id, m.kind, m.bytes, kT0);
    ASSERT_TRUE(r) << m.kind << ": " << r.error().message();
  }

  auto rows = (*store)->envelopes(term.id, 0, 1000);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    v1::Envelope e;
    ASSERT_TRUE(e.ParseFromString((*rows)[i].envelope));
    EXPECT_EQ((*rows)[i].sequence, i + 1);
    EXPECT_EQ(e.body(), bodies[i]) << "sequence " << i + 1;
  }
  auto audit = (*store)->audit(term.id, 0, 1000);
  ASSERT_EQ(audit->size(), bodies.size());
  for (std::size_t i = 0; i < audit->size(); ++i) {
    EXPECT_EQ((*audit)[i].line, "record " + std::to_string(i + 1));
  }
  auto report = check_stored_chain(**store, term.id);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok) << report->problem << " at " << report->first_bad;
  EXPECT_FALSE((*store)->incidents(term.id, 10)->empty());  // the broker was noticed
}

INSTANTIATE_TEST_SUITE_P(Algorithms, HostileBroker,
                         ::testing::Values(crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519,
                                           crypto::KeyType::sm2),
                         [](const auto& info) {
                           switch (info.param) {
                             case crypto::KeyType::ecdsa_p256:
                               return std::string("EcdsaP256");
                             case crypto::KeyType::ed25519:
                               return std::string("Ed25519");
                             case crypto::KeyType::sm2:
                               break;
                           }
                           return std::string("Sm2Sm3");
                         });

}  // namespace
}  // namespace portier::fleet
