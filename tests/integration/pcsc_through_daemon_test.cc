// A real pcscd with the vpcd virtual reader and a card emulator on its TCP
// port, served to apps through portierd: card events and APDU exchange for
// the claimant only. The pcscd runs in a mount namespace of its own (needs
// root); the daemon reaches it through PCSCLITE_CSOCK_NAME.
#include <gtest/gtest.h>

#include "daemon_fixture.h"
#include "pcsc/private_pcscd.h"
#include "pcsc/virtual_card.h"

namespace portier::test {
namespace {

using drivers::pcsc_testing::PrivatePcscd;
using drivers::pcsc_testing::VirtualCard;

const std::string kAtr("\x3B\x80\x80\x01\x01", 5);

// REQ-18: NFC/contact card readers through the gateway, per app.
TEST(PcscThroughDaemonTest, CardEventsAndApduExchange) {
  if (auto why = PrivatePcscd::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  drivers::pcsc_testing::process_socket();  // sets PCSCLITE_CSOCK_NAME, inherited by portierd
  PrivatePcscd pcscd;
  ASSERT_EQ(pcscd.start(), "");
  TempDir dir;
  DaemonOptions o;
  o.policy = "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
             "[[rule]]\napp = \"test-runner\"\nclass = \"smartcard\"\n"
             "ops = [\"list\", \"read\", \"claim\", \"transmit\"]\n";
  o.extra_config =
      "[pcsc]\nid_prefix = \"reader\"\n[pcsc.pinned]\nreader0 = \"" + pcscd.reader(0) + "\"\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();

  auto stub = d.connect();
  grpc::ClientContext sctx;
  sctx.set_deadline(std::chrono::system_clock::now() + 20s);
  v1::SubscribeRequest sr;
  sr.set_device_id("reader0");
  auto events = stub->Subscribe(&sctx, sr);
  ASSERT_TRUE(wait_until([&] { return d.health().subscribers_size() == 1; }));

  VirtualCard card(pcscd.port(0), kAtr);
  ASSERT_EQ(card.insert(), "");
  v1::PeripheralEvent ev;
  ASSERT_TRUE(events->Read(&ev)) << d.log();
  ASSERT_TRUE(ev.has_card()) << ev.DebugString();
  EXPECT_EQ(ev.card().kind(), v1::Card::INSERTED);
  EXPECT_EQ(ev.card().atr(), kAtr);

  std::string lease_id;
  {
    grpc::ClientContext ctx;
    v1::ClaimRequest cr;
    cr.set_device_id("reader0");
    cr.set_seconds(30);
    v1::ClaimResponse resp;
    ASSERT_TRUE(stub->Claim(&ctx, cr, &resp).ok());
    lease_id = resp.lease().lease_id();
  }
  grpc::ClientContext tctx;
  tctx.set_deadline(std::chrono::system_clock::now() + 20s);
  v1::TransmitRequest tr;
  tr.set_device_id("reader0");
  tr.set_apdu(std::string("\x00\xA4\x04\x00\x02\x3F\x00", 7));
  v1::TransmitResponse resp;
  auto st = stub->Transmit(&tctx, tr, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.response(), std::string("\x90\x00", 2));

  // When the lease ends the card is reset, so no session state (a verified
  // PIN, a selected applet) carries over to the next app.
  auto resets = card.resets();
  {
    grpc::ClientContext ctx;
    v1::ReleaseRequest rr;
    rr.set_lease_id(lease_id);
    v1::ReleaseResponse rresp;
    ASSERT_TRUE(stub->Release(&ctx, rr, &rresp).ok());
  }
  EXPECT_TRUE(wait_until([&] { return card.resets() > resets; }));
  EXPECT_TRUE(d.audit_has("\"event\":\"card_reset\",\"device\":\"reader0\""));

  auto h = d.health();
  bool self_tested = false;
  for (auto& t : h.self_tests()) {
    if (t.device_id() == "reader0") self_tested = t.passed();
  }
  EXPECT_TRUE(self_tested);
  sctx.TryCancel();
}

}  // namespace
}  // namespace portier::test
