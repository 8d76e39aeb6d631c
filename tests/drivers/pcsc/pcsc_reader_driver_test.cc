// PcscReaderDriver against a real pcscd with the vpcd virtual reader and a
// card emulator (virtual_card.h). Each test starts a pcscd of its own on
// free ports in a mount namespace of its own (private_pcscd.h explains how
// the test reaches it), so tests run in parallel (ctest -j) without
// sharing anything; they need root and skip otherwise.
#include "pcsc/pcsc_reader_driver.h"

#include <gtest/gtest.h>
#include <winscard.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "drivers/pcsc/pcsc_recording_sink.h"
#include "drivers/pcsc/private_pcscd.h"
#include "drivers/pcsc/virtual_card.h"

namespace portier::drivers {
namespace {

using namespace std::string_literals;
using namespace std::chrono_literals;
using pcsc_testing::kHangUpApdu;
using pcsc_testing::kStuckApdu;
using pcsc_testing::PcscRecordingSink;
using pcsc_testing::PrivatePcscd;
using pcsc_testing::Recorded;
using pcsc_testing::VirtualCard;
using Clock = std::chrono::steady_clock;

// T=1 contact card; and the PC/SC part 3 ATR of a contactless storage card.
const std::string kContactAtr("\x3B\x80\x80\x01\x01", 5);
const std::string kContactlessAtr(
    "\x3B\x8F\x80\x01\x80\x4F\x0C\xA0\x00\x00\x03\x06\x03\x00\x01\x00\x00\x00\x00\x6A", 20);
const std::string kUid("\x04\xA2\x2B\x92\x5C\x3F\x80", 7);
const std::string kSelect("\x00\xA4\x04\x00\x07\xA0\x00\x00\x00\x03\x10\x10\x00", 13);
const std::string kOk("\x90\x00", 2);

ActionRequest request(std::string id, std::string action, std::string data = {},
                      std::chrono::milliseconds timeout = 5000ms) {
  ActionRequest r;
  r.device_id = std::move(id);
  r.action = std::move(action);
  r.data = std::move(data);
  r.timeout = timeout;
  return r;
}

std::string echo_apdu(const std::string& data) {
  return "\x80\xCA\x00\x00"s + static_cast<char>(data.size()) + data + "\x00"s;
}

class PcscReaderDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = PrivatePcscd::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    pcscd_ = std::make_unique<PrivatePcscd>(friendly_name());
    config_.poll_ms = 200;
  }
  void TearDown() override {
    driver_.reset();  // stop first, while pcscd still answers
    cards_.clear();
    pcscd_.reset();
  }
  virtual std::string friendly_name() const { return "Virtual PCD"; }

  ::testing::AssertionResult start_pcscd() {
    const std::string why = pcscd_->start();
    if (why.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << why;
  }

  PcscReaderDriver& start_driver() {
    driver_ = std::make_unique<PcscReaderDriver>(config_);
    auto r = driver_->start(sink_);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return *driver_;
  }

  VirtualCard& card(int slot, const std::string& atr = kContactAtr, const std::string& uid = {}) {
    cards_.push_back(std::make_unique<VirtualCard>(pcscd_->port(slot), atr, uid));
    return *cards_.back();
  }

  // Inserts `c` and waits for the driver's inserted event on `id`.
  ::testing::AssertionResult insert(VirtualCard& c, const std::string& id) {
    const std::size_t before = sink_.snapshot().count("inserted " + id);
    if (auto why = c.insert(); !why.empty()) return ::testing::AssertionFailure() << why;
    if (!sink_.wait_entry("inserted " + id, before + 1)) {
      return ::testing::AssertionFailure() << "no inserted event for " << id;
    }
    return ::testing::AssertionSuccess();
  }

  PcscConfig config_;
  PcscRecordingSink sink_;
  std::unique_ptr<PrivatePcscd> pcscd_;
  std::vector<std::unique_ptr<VirtualCard>> cards_;
  std::unique_ptr<PcscReaderDriver> driver_;
};

// REQ-18: the card readers are offered through the gateway as devices.
TEST_F(PcscReaderDriverTest, ReadersAppearAsDevicesWithTheirActions) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  Recorded r = sink_.snapshot();  // reported before start() returned
  ASSERT_EQ(r.added.size(), 2u);
  const DeviceInfo* d = r.device("reader0");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->device_class, "smartcard");
  EXPECT_EQ(d->driver, "pcsc");
  EXPECT_EQ(d->attributes.at("reader"), pcscd_->reader(0));
  EXPECT_EQ(d->attributes.at("protocol"), "iso7816");
  EXPECT_EQ(d->attributes.at("driver"), "pcsc");
  ASSERT_EQ(d->actions.size(), 2u);
  EXPECT_EQ(d->actions[0].name, "transmit");
  EXPECT_EQ(d->actions[0].op, "transmit");
  EXPECT_TRUE(d->actions[0].needs_claim);
  EXPECT_EQ(d->actions[1].name, "reset");
  EXPECT_EQ(d->actions[1].op, "configure");
  EXPECT_TRUE(d->actions[1].needs_claim);
  ASSERT_NE(r.device("reader1"), nullptr);
  EXPECT_EQ(r.device("reader1")->attributes.at("reader"), pcscd_->reader(1));
  EXPECT_EQ(r.state("reader0"), DeviceState::ready);
  EXPECT_EQ(r.state("reader1"), DeviceState::ready);
  EXPECT_TRUE(r.alarms.empty());

  driver_->stop();
  r = sink_.snapshot();
  EXPECT_EQ(r.count("gone reader0"), 1u);
  EXPECT_EQ(r.count("gone reader1"), 1u);
}

TEST_F(PcscReaderDriverTest, AllowListHidesOtherReaders) {
  ASSERT_TRUE(start_pcscd());
  config_.readers_allowed = {"* 00 01"};
  start_driver();
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.added.size(), 1u);
  EXPECT_EQ(r.added[0].id, "reader0");
  EXPECT_EQ(r.added[0].attributes.at("reader"), pcscd_->reader(1));
}

// REQ-18: card insertion and removal reach the gateway as card events.
TEST_F(PcscReaderDriverTest, CardInsertAndRemoveAreReportedWithAtr) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  Recorded r = sink_.snapshot();
  auto cards = r.cards_of("reader0");
  ASSERT_EQ(cards.size(), 1u);
  EXPECT_EQ(cards[0].kind, CardData::Kind::inserted);
  EXPECT_EQ(cards[0].atr, kContactAtr);
  EXPECT_TRUE(cards[0].uid.empty());  // contact reader: no UID, and no APDU sent for one
  EXPECT_EQ(c.apdus(), 0u);
  EXPECT_TRUE(r.cards_of("reader1").empty());

  c.remove();
  ASSERT_TRUE(sink_.wait_entry("removed reader0"));
  cards = sink_.snapshot().cards_of("reader0");
  ASSERT_EQ(cards.size(), 2u);
  EXPECT_EQ(cards[1].kind, CardData::Kind::removed);

  // Inserted again: a second pair of events.
  VirtualCard& again = card(0);
  ASSERT_TRUE(insert(again, "reader0"));
}

TEST_F(PcscReaderDriverTest, CardAlreadyPresentAtStartIsReported) {
  ASSERT_TRUE(start_pcscd());
  VirtualCard& c = card(1);
  ASSERT_EQ(c.insert(), "");
  // Wait until pcscd itself sees the card (a driver of its own is the probe).
  {
    PcscRecordingSink probe_sink;
    PcscReaderDriver probe(config_);
    ASSERT_TRUE(probe.start(probe_sink).has_value());
    ASSERT_TRUE(probe_sink.wait_entry("inserted reader1"));
  }
  start_driver();
  ASSERT_TRUE(sink_.wait_entry("inserted reader1"));
  auto cards = sink_.snapshot().cards_of("reader1");
  ASSERT_EQ(cards.size(), 1u);
  EXPECT_EQ(cards[0].atr, kContactAtr);
  EXPECT_TRUE(sink_.snapshot().cards_of("reader0").empty());
}

// REQ-18: an NFC reader reports the contactless card's UID.
class ContactlessReaderTest : public PcscReaderDriverTest {
  std::string friendly_name() const override { return "Virtual PICC"; }
};

TEST_F(ContactlessReaderTest, ContactlessCardReportsAtrAndUid) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  const DeviceInfo* d = sink_.snapshot().device("reader0");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->device_class, "nfc");
  EXPECT_EQ(d->attributes.at("protocol"), "iso14443");
  VirtualCard& c = card(0, kContactlessAtr, kUid);
  ASSERT_TRUE(insert(c, "reader0"));
  auto cards = sink_.snapshot().cards_of("reader0");
  ASSERT_EQ(cards.size(), 1u);
  EXPECT_EQ(cards[0].atr, kContactlessAtr);
  EXPECT_EQ(cards[0].uid, kUid);
  // The app's own exchanges work on the same card session.
  auto res = driver_->act(request("reader0", "transmit", kSelect));
  ASSERT_TRUE(res.has_value()) << res.error().message();
  EXPECT_EQ(res->data, kOk);
}

TEST_F(PcscReaderDriverTest, ConfigCanDeclareAReaderContactless) {
  ASSERT_TRUE(start_pcscd());
  config_.contactless_readers = {pcscd_->reader(1)};
  start_driver();
  Recorded r = sink_.snapshot();
  EXPECT_EQ(r.device("reader0")->device_class, "smartcard");
  EXPECT_EQ(r.device("reader1")->device_class, "nfc");
  VirtualCard& c = card(1, kContactlessAtr, kUid);
  ASSERT_TRUE(insert(c, "reader1"));
  EXPECT_EQ(sink_.snapshot().cards_of("reader1").at(0).uid, kUid);
}

// REQ-18: an APDU round trip through the driver.
TEST_F(PcscReaderDriverTest, TransmitRoundTrip) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));

  auto r = driver_->act(request("reader0", "transmit", kSelect));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->data, kOk);
  EXPECT_EQ(r->values.at("sw"), "9000");
  EXPECT_FALSE(r->values.at("protocol").empty());

  r = driver_->act(request("reader0", "transmit", echo_apdu("hello card")));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->data, "hello card"s + kOk);

  r = driver_->act(request("reader0", "transmit", "\x80\x10\x00\x00"s));  // unknown INS
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->values.at("sw"), "6D00");
  EXPECT_EQ(c.apdus(), 3u);
}

TEST_F(PcscReaderDriverTest, ExtendedLengthApduRoundTrip) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  std::string data(1000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  const std::string apdu = "\x80\xCA\x00\x00\x00\x03\xE8"s + data + "\x00\x00"s;
  auto r = driver_->act(request("reader0", "transmit", apdu));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->data, data + kOk);
}

// Malformed and over-long APDUs are refused before any card I/O.
TEST_F(PcscReaderDriverTest, MalformedAndOverlongApdusAreRefusedWithoutCardIo) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  const std::string over_long =
      "\x80\xCA\x00\x00\x00\xFF\xFF"s + std::string(65535, 'x') + "\x00\x00"s + "\x00"s;
  ASSERT_EQ(over_long.size(), 65545u);
  const std::string bad[] = {""s,
                             "\x00\xA4"s,
                             "\x00\xA4\x04\x00\x05\x01"s,
                             "\x00\x60\x00\x00"s,
                             "\x00\xA4\x04\x00\x00\x00"s,
                             over_long};
  for (const auto& apdu : bad) {
    auto r = driver_->act(request("reader0", "transmit", apdu));
    ASSERT_FALSE(r.has_value()) << apdu.size() << " bytes accepted";
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << r.error().message();
    EXPECT_NE(r.error().message().find("malformed command APDU"), std::string::npos);
  }
  // The card saw none of them: the next valid APDU is its first.
  auto r = driver_->act(request("reader0", "transmit", kSelect));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(c.apdus(), 1u);
}

TEST_F(PcscReaderDriverTest, ReaderCommandsCanBeDisabled) {
  ASSERT_TRUE(start_pcscd());
  config_.allow_reader_commands = false;
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  auto r = driver_->act(request("reader0", "transmit", "\xFF\xCA\x00\x00\x00"s));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_EQ(c.apdus(), 0u);
}

TEST_F(PcscReaderDriverTest, TransmitWithoutCardIsUnavailable) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  auto r = driver_->act(request("reader0", "transmit", kSelect));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_NE(r.error().message().find("card"), std::string::npos) << r.error().message();
}

TEST_F(PcscReaderDriverTest, WriteUnknownDeviceAndUnknownActionAreRefused) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  auto w = driver_->write("reader0", "\x00\xA4\x04\x00"s);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, Errc::failed_precondition);
  auto a = driver_->act(request("nope", "transmit", kSelect));
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, Errc::not_found);
  a = driver_->act(request("reader0", "frobnicate"));
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, Errc::failed_precondition);
}

TEST_F(PcscReaderDriverTest, ResetWarmResetsTheCardAndReturnsItsAtr) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  const std::size_t resets = c.resets();
  auto r = driver_->act(request("reader0", "reset"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->data, kContactAtr);
  EXPECT_GT(c.resets(), resets);
  auto t = driver_->act(request("reader0", "transmit", kSelect));
  ASSERT_TRUE(t.has_value()) << t.error().message();
}

// Another program on the same reader (a PC/SC client beside portierd).
// Connected at construction unless `connect_now` is false; then begin()
// connects first (pcsc-lite's SCardConnect, too, waits while another
// program holds a transaction).
class OtherProgram {
 public:
  explicit OtherProgram(std::string reader, bool connect_now = true) : reader_(std::move(reader)) {
    EXPECT_EQ(SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx_), SCARD_S_SUCCESS);
    if (connect_now) {
      EXPECT_EQ(connect(), SCARD_S_SUCCESS);
    }
  }
  ~OtherProgram() {
    if (began_.valid() && began_.wait_for(10s) == std::future_status::ready &&
        began_.get() == SCARD_S_SUCCESS) {
      SCardEndTransaction(card_, SCARD_LEAVE_CARD);
    }
    if (card_) SCardDisconnect(card_, SCARD_LEAVE_CARD);
    SCardReleaseContext(ctx_);
  }
  // Starts SCardBeginTransaction (after SCardConnect when not connected yet)
  // on a thread: it waits while portierd holds a transaction.
  void begin() {
    began_ = std::async(std::launch::async, [this] {
      if (!card_) {
        if (const LONG rv = connect(); rv != SCARD_S_SUCCESS) return rv;
      }
      return SCardBeginTransaction(card_);
    });
  }
  bool began_within(std::chrono::milliseconds d) {
    return began_.wait_for(d) == std::future_status::ready;
  }

 private:
  LONG connect() {
    DWORD protocol = 0;
    return SCardConnect(ctx_, reader_.c_str(), SCARD_SHARE_SHARED,
                        SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card_, &protocol);
  }

  const std::string reader_;
  SCARDCONTEXT ctx_ = 0;
  SCARDHANDLE card_ = 0;
  std::future<LONG> began_;
};

// The APDUs of one app's session share one PC/SC transaction: another
// program cannot get an APDU in between (its SCardBeginTransaction waits),
// and the session ends with the reset that follows a lease.
TEST_F(PcscReaderDriverTest, SessionApdusShareOneTransactionUntilReset) {
  config_.transaction_hold_ms = 60000;  // only the reset ends it in this test
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  // Connected before the session starts (pcsc-lite's SCardConnect, too,
  // waits while another program holds a transaction).
  OtherProgram other(pcscd_->reader(0));
  ASSERT_TRUE(driver_->act(request("reader0", "transmit", kSelect)).has_value());
  other.begin();
  for (int i = 0; i < 3; ++i) {
    auto r = driver_->act(request("reader0", "transmit", echo_apdu("step")));
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_FALSE(other.began_within(100ms)) << "another program got into the session";
  }
  ASSERT_TRUE(driver_->act(request("reader0", "reset")).has_value());
  EXPECT_TRUE(other.began_within(10s)) << "the reset did not end the session's transaction";
}

// A session without APDUs for transaction_hold_ms lets other programs in.
TEST_F(PcscReaderDriverTest, IdleSessionTransactionEndsAfterTheHold) {
  config_.transaction_hold_ms = 200;
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  OtherProgram other(pcscd_->reader(0));
  ASSERT_TRUE(driver_->act(request("reader0", "transmit", kSelect)).has_value());
  other.begin();
  EXPECT_TRUE(other.began_within(10s)) << "the idle transaction was never ended";
}

// A session ends with its card: the next card in the reader is free for
// other programs at once, not after the hold (pcscd releases a removed
// card's lock itself, and the worker drops its handle when told the card
// changed).
TEST_F(PcscReaderDriverTest, CardRemovalEndsTheHeldTransaction) {
  config_.transaction_hold_ms = 60000;
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  ASSERT_TRUE(driver_->act(request("reader0", "transmit", kSelect)).has_value());
  const std::size_t removed = sink_.snapshot().count("removed reader0");
  c.remove();
  ASSERT_TRUE(sink_.wait_entry("removed reader0", removed + 1));
  VirtualCard& next = card(0);
  ASSERT_TRUE(insert(next, "reader0"));
  OtherProgram other(pcscd_->reader(0), /*connect_now=*/false);
  other.begin();  // connect and begin, both well within the 60 s hold
  EXPECT_TRUE(other.began_within(10s)) << "the old session still holds the reader";
}

// transaction_hold_ms = 0: every APDU is a transaction of its own.
TEST_F(PcscReaderDriverTest, HoldZeroEndsTheTransactionAfterEachApdu) {
  config_.transaction_hold_ms = 0;
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  OtherProgram other(pcscd_->reader(0));
  ASSERT_TRUE(driver_->act(request("reader0", "transmit", kSelect)).has_value());
  other.begin();
  // Free at once: well before even the default hold (1000 ms) would end.
  EXPECT_TRUE(other.began_within(500ms)) << "the transaction outlived the APDU";
}

// A card that never answers costs its caller request.timeout, not more, and
// holds up nobody else: the other reader keeps working meanwhile.
TEST_F(PcscReaderDriverTest, StuckCardTimesOutWhileTheOtherReaderKeepsWorking) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& stuck = card(0);
  VirtualCard& fine = card(1);
  ASSERT_TRUE(insert(stuck, "reader0"));
  ASSERT_TRUE(insert(fine, "reader1"));

  const auto timeout = 1500ms;
  const auto began = Clock::now();
  auto pending = std::async(std::launch::async, [&] {
    return driver_->act(request("reader0", "transmit", kStuckApdu, timeout));
  });
  ASSERT_TRUE(stuck.wait_stuck(5s));

  // While reader0's card hangs, reader1 answers.
  auto other = driver_->act(request("reader1", "transmit", kSelect, 3000ms));
  ASSERT_TRUE(other.has_value()) << other.error().message();
  EXPECT_EQ(other->data, kOk);
  EXPECT_EQ(pending.wait_for(0ms), std::future_status::timeout) << "returned before the card did";

  ASSERT_EQ(pending.wait_for(timeout + 2s), std::future_status::ready) << "act() hung";
  const auto took = Clock::now() - began;
  auto r = pending.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_NE(r.error().message().find("timed out"), std::string::npos) << r.error().message();
  EXPECT_GE(took, timeout);
  EXPECT_LT(took, timeout + 1s);

  // The reader stays blocked by its card: a new exchange fails at once.
  const auto again_began = Clock::now();
  auto again = driver_->act(request("reader0", "transmit", kSelect, 3000ms));
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, Errc::unavailable);
  EXPECT_NE(again.error().message().find("busy"), std::string::npos) << again.error().message();
  EXPECT_LT(Clock::now() - again_began, 1s);

  // stop() does not wait for the stuck card either.
  const auto stop_began = Clock::now();
  driver_->stop();
  EXPECT_LT(Clock::now() - stop_began, 3s);
}

// The card is pulled out while it works on an APDU.
TEST_F(PcscReaderDriverTest, CardPulledOutMidApduFailsPromptly) {
  ASSERT_TRUE(start_pcscd());
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  const auto began = Clock::now();
  auto r = driver_->act(request("reader0", "transmit", kHangUpApdu, 5000ms));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_NE(r.error().message().find("card"), std::string::npos) << r.error().message();
  EXPECT_LT(Clock::now() - began, 4s);
  ASSERT_TRUE(sink_.wait_entry("removed reader0"));
}

// REQ-3: the reader itself vanishes (pcscd and its readers are gone) in
// the middle of an APDU: the caller gets an answer, the readers are
// reported gone, and a pinned one raises an alarm.
TEST_F(PcscReaderDriverTest, ReaderVanishingMidApduIsUnavailableAndAlarmsWhenPinned) {
  ASSERT_TRUE(start_pcscd());
  config_.pinned = {{"reader0", pcscd_->reader(0)}};
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  auto pending = std::async(std::launch::async, [&] {
    return driver_->act(request("reader0", "transmit", kStuckApdu, 10000ms));
  });
  ASSERT_TRUE(c.wait_stuck(5s));
  const auto began = Clock::now();
  pcscd_->kill_now();
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready) << "act() hung";
  auto r = pending.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_LT(Clock::now() - began, 5s);

  ASSERT_TRUE(sink_.wait_entry("alarm reader0 device_removed"));
  ASSERT_TRUE(sink_.wait_entry("gone reader1"));
  Recorded rec = sink_.snapshot();
  EXPECT_EQ(rec.state("reader0"), DeviceState::disconnected);
  EXPECT_FALSE(rec.present("reader1"));
  EXPECT_TRUE(rec.present("reader0"));          // pinned ids stay, disconnected
  EXPECT_GE(rec.count("removed reader0"), 1u);  // the card went with the reader
  auto alarms = rec.alarms_of("reader0");
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].details.at("expected"), pcscd_->reader(0));

  auto after = driver_->act(request("reader0", "transmit", kSelect));
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, Errc::unavailable);
}

// REQ-3: pinned readers that go away raise device_removed; when they are
// back (pcscd restarted) they are ready again, without a new alarm.
TEST_F(PcscReaderDriverTest, PinnedReadersRemovedRaiseAlarmsAndComeBack) {
  ASSERT_TRUE(start_pcscd());
  config_.pinned = {{"left", pcscd_->reader(0)}, {"right", pcscd_->reader(1)}};
  start_driver();
  Recorded r = sink_.snapshot();
  EXPECT_TRUE(r.alarms.empty());
  EXPECT_EQ(r.state("left"), DeviceState::ready);
  EXPECT_EQ(r.state("right"), DeviceState::ready);

  pcscd_->stop();
  ASSERT_TRUE(sink_.wait_entry("alarm left device_removed"));
  ASSERT_TRUE(sink_.wait_entry("alarm right device_removed"));
  EXPECT_EQ(sink_.snapshot().state("left"), DeviceState::disconnected);

  ASSERT_TRUE(start_pcscd());
  ASSERT_TRUE(sink_.wait([](const Recorded& r) {
    return r.state("left") == DeviceState::ready && r.state("right") == DeviceState::ready;
  }));
  EXPECT_EQ(sink_.snapshot().alarms.size(), 2u);
}

// REQ-3 and readers arriving at run time: the driver starts before pcscd.
TEST_F(PcscReaderDriverTest, PinnedReaderMissingAtStartAlarmsThenArrives) {
  config_.pinned = {{"reader0", pcscd_->reader(0)}};
  start_driver();  // no pcscd yet
  Recorded r = sink_.snapshot();
  ASSERT_NE(r.device("reader0"), nullptr);
  EXPECT_EQ(r.state("reader0"), DeviceState::disconnected);
  auto alarms = r.alarms_of("reader0");
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].code, "device_removed");
  EXPECT_EQ(alarms[0].details.at("expected"), pcscd_->reader(0));
  auto st = driver_->self_test();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_FALSE(st[0].present);
  EXPECT_FALSE(st[0].passed());

  ASSERT_TRUE(start_pcscd());
  ASSERT_TRUE(sink_.wait([](const Recorded& r) {
    return r.state("reader0") == DeviceState::ready && r.present("reader1");
  }));
  EXPECT_EQ(sink_.snapshot().device("reader1")->attributes.at("reader"), pcscd_->reader(1));
  EXPECT_EQ(sink_.snapshot().alarms.size(), 1u);
}

// REQ-4: another reader where a pinned one is expected.
TEST_F(PcscReaderDriverTest, SubstitutedPinnedReaderRaisesAlarm) {
  ASSERT_TRUE(start_pcscd());
  config_.pinned = {{"door", "Trusted Reader 00 00"}};
  start_driver();
  Recorded r = sink_.snapshot();
  auto alarms = r.alarms_of("door");
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].code, "device_substituted");
  EXPECT_EQ(alarms[0].details.at("expected"), "Trusted Reader 00 00");
  EXPECT_EQ(alarms[0].details.at("actual"), pcscd_->reader(0) + ", " + pcscd_->reader(1));
  EXPECT_EQ(r.state("door"), DeviceState::disconnected);
  // The substitutes are readers of their own, not the pinned id.
  EXPECT_EQ(r.device("reader0")->attributes.at("reader"), pcscd_->reader(0));
  auto a = driver_->act(request("door", "transmit", kSelect));
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, Errc::unavailable);
}

// REQ-12: readers are self-tested before the gateway reports ready.
TEST_F(PcscReaderDriverTest, SelfTestReportsPresenceResponseAndIdentity) {
  ASSERT_TRUE(start_pcscd());
  config_.pinned = {{"reader0", pcscd_->reader(0)}, {"door", "Trusted Reader 00 00"}};
  start_driver();
  VirtualCard& c = card(0);
  ASSERT_TRUE(insert(c, "reader0"));
  const auto began = Clock::now();
  auto results = driver_->self_test();
  EXPECT_LT(Clock::now() - began, 3s);
  ASSERT_EQ(results.size(), 3u);
  std::map<std::string, SelfTestResult> by_id;
  for (auto& t : results) by_id[t.device_id] = t;

  const auto& pinned = by_id.at("reader0");
  EXPECT_TRUE(pinned.present);
  EXPECT_TRUE(pinned.responding);
  EXPECT_TRUE(pinned.identity_ok);
  EXPECT_TRUE(pinned.passed());
  EXPECT_NE(pinned.detail.find("card present"), std::string::npos) << pinned.detail;

  const auto& other = by_id.at("reader1");  // unpinned: reader0 is taken by the pin
  EXPECT_TRUE(other.passed()) << other.detail;
  EXPECT_NE(other.detail.find("no card"), std::string::npos) << other.detail;

  const auto& door = by_id.at("door");
  EXPECT_FALSE(door.present);
  EXPECT_FALSE(door.responding);
  EXPECT_FALSE(door.identity_ok);
  EXPECT_FALSE(door.passed());
  EXPECT_NE(door.detail.find(pcscd_->reader(1)), std::string::npos) << door.detail;
  EXPECT_EQ(c.apdus(), 0u);  // the self-test sends no APDU
}

}  // namespace
}  // namespace portier::drivers
