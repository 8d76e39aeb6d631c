// The order the fleet sees at a terminal's first connection, over the real
// MQTT link and a real Mosquitto. A terminal that connects before the
// fleet has subscribed (the demo, and a first install, start the broker,
// the fleet and the terminal together) publishes its first run to nobody,
// and the broker drops it. Seen in the demo: the fleet then got the next
// record (sequence 5) alone, and 1..4 only when the sender's
// acknowledgement timeout sent them again ("gap", then "reordered"). With
// probe_first the connection starts with the oldest run alone, sent again
// until the fleet answers, and nothing newer goes before it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/link/fleet_peer.h"
#include "agent/link/mqtt_link.h"
#include "agent/management/outbox_link_fixture.h"
#include "portier/v1/envelope.pb.h"
#include "support/mosquitto_broker.h"
#include "support/test_pki.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;
using portier::test::MosquittoBroker;
using portier::test_support::TempDir;

const std::string kRunTopic = "portier/v1/f1/T-1/up/run";

// The sequences of the envelopes in one up/run message, in its order.
std::vector<std::uint64_t> sequences_of(const std::string& run_bytes) {
  std::vector<std::uint64_t> out;
  v1::EnvelopeRun run;
  if (!run.ParseFromString(run_bytes)) {
    ADD_FAILURE() << "an up/run message that is no EnvelopeRun";
    return out;
  }
  for (const auto& e : run.envelopes()) {
    v1::Envelope env;
    v1::EnvelopeBody body;
    if (!env.ParseFromString(e) || !body.ParseFromString(env.body())) {
      ADD_FAILURE() << "an envelope that does not parse";
      continue;
    }
    out.push_back(body.sequence());
  }
  return out;
}

// What the fleet acknowledges of one up/run message: each envelope by its
// sequence and its body's digest (the terminal's key is ECDSA: SHA-256).
std::vector<link::AckedRange> acked_of(const std::string& run_bytes) {
  std::vector<link::AckedRange> out;
  v1::EnvelopeRun run;
  if (!run.ParseFromString(run_bytes)) return out;
  for (const auto& e : run.envelopes()) {
    v1::Envelope env;
    v1::EnvelopeBody body;
    if (!env.ParseFromString(e) || !body.ParseFromString(env.body())) continue;
    out.push_back(
        {body.sequence(), body.sequence(), test::chain_digest_of(e, crypto::DigestAlgo::sha256)});
  }
  return out;
}

// The up/run messages `peer` got, in order.
std::vector<std::vector<std::uint64_t>> runs_of(link::Fleet& peer) {
  std::vector<std::vector<std::uint64_t>> out;
  for (const auto& [topic, payload] : peer.messages) {
    if (topic == kRunTopic) out.push_back(sequences_of(payload));
  }
  return out;
}

struct AtExit {
  std::function<void()> f;
  ~AtExit() { f(); }
};

TEST(FirstConnectionOrderTest, AtFirstConnectionSequencesArriveInOrder_REQ29) {
  TempDir dir("portier-first-connection");
  auto tls = portier::test::write_test_tls(dir.path(), {"T-1", "fleet", "witness"});
  MosquittoBroker broker(dir.path(), tls);
  ASSERT_TRUE(broker.start());
  const std::string pki_dir = dir.path() + "/pki";
  ASSERT_EQ(::mkdir(pki_dir.c_str(), 0700), 0);
  auto pki = portier::test::TestPki::create(pki_dir);
  ASSERT_TRUE(pki) << pki.error().message();
  auto acker = test::make_acker(*pki);  // the fleet's acknowledgement key
  ASSERT_TRUE(acker);

  // The terminal: four records committed before the link is up (birth,
  // audit, health, as at a first start while enrolment runs).
  auto box = test::open_outbox(dir.file("outbox.db"));
  ASSERT_TRUE(box) << box.error().message();
  auto state = (*box)->chain_state();
  ASSERT_TRUE(state);
  ++state->session_epoch;
  auto signer = test::device_signer(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(signer);
  const auto kid = envelope::key_id(signer->public_key());
  ASSERT_TRUE(kid);
  Uplink uplink(**box, envelope::EnvelopeSealer("T-1", signer->type(), *state), *signer, *kid,
                UplinkOptions{});
  uplink.start();
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(uplink.submit(v1::PAYLOAD_HEALTH, "record " + std::to_string(i),
                              outbox::Priority::security));
  }
  ASSERT_TRUE(uplink.flush(10s));

  // Sees what the broker passes on, as the fleet's subscription would, so
  // the test knows when the first run has gone through the broker.
  link::Fleet witness(broker.uri(), tls, {"portier/v1/f1/+/up/#"}, "witness");

  link::MqttLinkOptions lo;
  lo.server_uri = broker.uri();
  lo.fleet = "f1";
  lo.terminal_id = "T-1";
  lo.tls = {tls.ca_file, tls.cert("T-1"), tls.key("T-1")};
  lo.will_payload = "offline";
  lo.backoff_min = 50ms;
  lo.backoff_max = 400ms;
  auto link = link::MqttLink::create(lo);
  ASSERT_TRUE(link) << link.error().message();
  // The acknowledgement timeout far beyond the test: only the probe can
  // bring the dropped run back in time.
  OutboxSender sender(
      **box, **link, {.terminal_id = "T-1", .trust_anchors = {pki->root()}}, nullptr,
      SenderOptions{
          .idle_poll = 50ms, .ack_timeout = 120s, .probe_first = true, .probe_retry = 100ms});
  // The link first (no callback after it), then what it calls.
  AtExit cleanup{[&] {
    (*link)->stop();
    sender.stop();
    uplink.stop();
  }};
  uplink.on_stored([&] { sender.wake(); });
  sender.start();
  ASSERT_TRUE((*link)->start(sender));

  // The first run went through the broker before the fleet subscribed: the
  // fleet never gets that copy.
  ASSERT_TRUE(witness.wait([&] { return !runs_of(witness).empty(); })) << broker.log();

  // The fleet subscribes; the terminal commits its next record (a command's
  // result, in the demo).
  link::Fleet fleet(broker.uri(), tls, {"portier/v1/f1/+/up/#"});
  ASSERT_TRUE(uplink.submit(v1::PAYLOAD_COMMAND_RESULT, "result", outbox::Priority::security));
  ASSERT_TRUE(uplink.flush(10s));

  // The fleet acknowledges what it receives (signed, as portier-fleet does),
  // until sequence 5 is there.
  std::size_t answered = 0;
  bool got_5 = false;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!got_5 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(fleet.wait([&] { return runs_of(fleet).size() > answered; })) << broker.log();
    std::vector<std::string> runs;
    {
      std::lock_guard lock(fleet.mu);
      for (const auto& [topic, payload] : fleet.messages) {
        if (topic == kRunTopic) runs.push_back(payload);
      }
    }
    for (; answered < runs.size(); ++answered) {
      const auto ranges = acked_of(runs[answered]);
      for (const auto& r : ranges) got_5 = got_5 || r.last == 5;
      auto ack = acker->sign("T-1", ranges, std::chrono::system_clock::now());
      ASSERT_TRUE(ack) << ack.error().message();
      fleet.publish("portier/v1/f1/T-1/down/ack", *ack);
    }
  }
  ASSERT_TRUE(got_5) << broker.log();

  // Every envelope reached the fleet after all those before it: none past a
  // gap (the order the fleet's chain check wants).
  std::vector<std::uint64_t> seqs;
  {
    std::lock_guard lock(fleet.mu);
    for (auto& run : runs_of(fleet)) seqs.insert(seqs.end(), run.begin(), run.end());
  }
  auto shown = [](link::Fleet& peer) {
    std::string out;
    std::lock_guard lock(peer.mu);
    for (auto& run : runs_of(peer)) {
      out += " [";
      for (auto s : run) out += std::to_string(s) + " ";
      out += "]";
    }
    return out;
  };
  SCOPED_TRACE("the fleet got" + shown(fleet) + "; the witness got" + shown(witness));
  ASSERT_FALSE(seqs.empty());
  EXPECT_EQ(seqs.front(), 1u);
  std::uint64_t contiguous = 0;  // 1..contiguous have arrived
  for (auto s : seqs) {
    EXPECT_LE(s, contiguous + 1) << "sequence " << s << " arrived before " << contiguous + 1;
    if (s == contiguous + 1) contiguous = s;
  }
  EXPECT_EQ(contiguous, 5u);
}

}  // namespace
}  // namespace portier::management
