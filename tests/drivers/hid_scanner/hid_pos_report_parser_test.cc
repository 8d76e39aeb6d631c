// HID POS Scanned Data Report parsing and multi-report assembly, on the
// report fixtures of tests/data/hid/.
#include "hid_scanner/hid_pos_report_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "drivers/hid_scanner/hex_fixture.h"
#include "serial_scanner/scan_decoder.h"

namespace portier::drivers {
namespace {

using namespace std::string_literals;
using testing::load_hex_reports;

// Feeds reports and keeps what came out (none items dropped).
std::vector<HidPosItem> feed_all(HidPosAssembler& a, const std::vector<std::string>& reports) {
  std::vector<HidPosItem> out;
  for (const auto& r : reports) {
    HidPosItem item = a.feed(r);
    if (item.kind != HidPosItem::Kind::none) out.push_back(std::move(item));
  }
  return out;
}

ScanData decode(const HidPosItem& item) {
  ScanDecoder d(DecoderOptions{"", true, TextEncoding::automatic});
  return d.decode(item.aim + item.data);
}

std::string make_report(std::string_view data, std::string_view aim = "]Q1", bool more = false,
                        int length = -1, unsigned char id = 0x02) {
  std::string r(64, '\0');
  r[0] = static_cast<char>(id);
  r[1] = static_cast<char>(length < 0 ? static_cast<int>(data.size()) : length);
  r.replace(2, 3, aim);
  r.replace(5, data.size(), data);
  r[63] = more ? 1 : 0;
  return r;
}

// A HID POS scan arrives with its symbology like a serial one.
// REQ-18
TEST(HidPosReportParser, SingleReportScan) {
  auto reports = load_hex_reports("qr_single.hex");
  ASSERT_EQ(reports.size(), 1u);
  HidPosReport p = parse_hid_pos_report(reports[0]);
  ASSERT_TRUE(p.ok) << p.reason;
  EXPECT_EQ(p.aim, "]Q1");
  EXPECT_EQ(p.data, "PORTIER-QR-0001");
  EXPECT_FALSE(p.more);

  HidPosAssembler a(4096);
  auto out = feed_all(a, reports);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].kind, HidPosItem::Kind::scan);
  ScanData scan = decode(out[0]);
  EXPECT_EQ(scan.symbology, "QR Code");
  EXPECT_EQ(scan.aim_id, "]Q1");
  EXPECT_EQ(scan.text, "PORTIER-QR-0001");
}

// REQ-18
TEST(HidPosReportParser, MultiReportScanIsOneFrame) {
  auto reports = load_hex_reports("multi_report.hex");
  ASSERT_EQ(reports.size(), 3u);
  HidPosAssembler a(4096);
  EXPECT_EQ(a.feed(reports[0]).kind, HidPosItem::Kind::none);
  EXPECT_EQ(a.feed(reports[1]).kind, HidPosItem::Kind::none);
  HidPosItem item = a.feed(reports[2]);
  ASSERT_EQ(item.kind, HidPosItem::Kind::scan);
  EXPECT_EQ(item.aim, "]Q1");
  ASSERT_EQ(item.data.size(), 130u);
  EXPECT_TRUE(item.data.starts_with("https://pay.example.test/q/0123456789"));
}

// A payload of exactly 2 x 56 bytes ends with a zero-length report.
// REQ-22
TEST(HidPosReportParser, ZeroLengthReportEndsAScanOfWholeReports) {
  auto reports = load_hex_reports("exact_112.hex");
  ASSERT_EQ(reports.size(), 3u);
  HidPosAssembler a(4096);
  auto out = feed_all(a, reports);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].kind, HidPosItem::Kind::scan);
  EXPECT_EQ(out[0].data.size(), 112u);
  EXPECT_EQ(decode(out[0]).symbology, "Data Matrix");
}

// REQ-18 REQ-22
TEST(HidPosReportParser, AimIdsGiveSymbologies) {
  HidPosAssembler a(4096);
  auto ean = feed_all(a, load_hex_reports("ean13.hex"));
  ASSERT_EQ(ean.size(), 1u);
  ScanData s = decode(ean[0]);
  EXPECT_EQ(s.aim_id, "]E0");
  EXPECT_EQ(s.symbology, "EAN/UPC");
  EXPECT_EQ(s.text, "4006381333931");

  auto none = feed_all(a, load_hex_reports("no_aim.hex"));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].aim, "");
  // The payload's own "]C1" is data: the identifier travels out of band.
  EXPECT_EQ(none[0].data, "]C1not-an-aim-id");

  for (std::string aim : {"]d2"s, "]z0"s, "]e0"s, "]C1"s}) {
    auto out = feed_all(a, {make_report("X", aim)});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].aim, aim);
  }
}

// GB 18030 payloads decode to UTF-8 as on the serial scanner.
// REQ-22
TEST(HidPosReportParser, Gb18030PayloadThroughTheDecoder) {
  HidPosAssembler a(4096);
  auto out = feed_all(a, load_hex_reports("gb18030.hex"));
  ASSERT_EQ(out.size(), 1u);
  ScanData s = decode(out[0]);
  EXPECT_EQ(s.text, "中文支付码");
  EXPECT_EQ(s.encoding, "gb18030");
  EXPECT_EQ(s.raw, "\xd6\xd0\xce\xc4\xd6\xa7\xb8\xb6\xc2\xeb");
  EXPECT_FALSE(s.decode_error);
}

// Malformed reports are errors with a reason, never scans.
// REQ-22
TEST(HidPosReportParser, LengthBytePastEndIsAnError) {
  auto reports = load_hex_reports("malformed_length.hex");
  HidPosReport p = parse_hid_pos_report(reports.at(0));
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("length byte 57"), std::string::npos) << p.reason;
  EXPECT_FALSE(parse_hid_pos_report(make_report("", "]Q1", false, 255)).ok);

  HidPosAssembler a(4096);
  auto out = feed_all(a, reports);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, HidPosItem::Kind::fault);
  EXPECT_EQ(out[0].code, "malformed_report");
  EXPECT_EQ(out[0].reason.find("XXXX"), std::string::npos);  // no payload in faults
}

// REQ-22
TEST(HidPosReportParser, ZeroLengthReportIsAnError) {
  HidPosAssembler a(4096);
  auto out = feed_all(a, load_hex_reports("malformed_zero_length.hex"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, HidPosItem::Kind::fault);
  EXPECT_NE(out[0].reason.find("zero-length"), std::string::npos) << out[0].reason;
  // Zero length with the continued bit inside a scan is malformed too.
  out = feed_all(a, {make_report("A", "]Q1", true), make_report("", "]Q1", true)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, HidPosItem::Kind::fault);
}

// REQ-22
TEST(HidPosReportParser, WrongReportIdIsAnError) {
  auto reports = load_hex_reports("malformed_report_id.hex");
  HidPosReport p = parse_hid_pos_report(reports.at(0));
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("report id 0x04"), std::string::npos) << p.reason;

  // It belongs to another report, so a scan in progress survives it.
  auto multi = load_hex_reports("multi_report.hex");
  HidPosAssembler a(4096);
  auto out = feed_all(a, {multi[0], reports[0], multi[1], multi[2]});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, HidPosItem::Kind::fault);
  EXPECT_EQ(out[0].code, "malformed_report");
  ASSERT_EQ(out[1].kind, HidPosItem::Kind::scan);
  EXPECT_EQ(out[1].data.size(), 130u);
}

// REQ-22
TEST(HidPosReportParser, WrongSizeEmptyAndBadAimAreErrors) {
  EXPECT_FALSE(parse_hid_pos_report("").ok);
  EXPECT_FALSE(parse_hid_pos_report(make_report("A").substr(0, 10)).ok);
  EXPECT_FALSE(parse_hid_pos_report(make_report("A") + "x").ok);
  HidPosReport p = parse_hid_pos_report(make_report("A", "Q1]"));
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.reason.find("AIM"), std::string::npos) << p.reason;
  EXPECT_FALSE(parse_hid_pos_report(make_report("A", "]1Q")).ok);
  // Another report id is accepted when configured.
  EXPECT_TRUE(parse_hid_pos_report(make_report("A", "]Q1", false, -1, 0x07), 0x07).ok);
}

// A malformed report in the middle drops the scan and skips its remaining
// reports: the tail of a broken scan never comes out as a shorter scan.
// REQ-22
TEST(HidPosReportParser, MalformedReportMidScanDropsTheWholeScan) {
  auto multi = load_hex_reports("multi_report.hex");
  auto qr = load_hex_reports("qr_single.hex");
  HidPosAssembler a(4096);
  std::string broken = multi[1];
  broken[1] = static_cast<char>(200);  // length past end; continued bit still set
  auto out = feed_all(a, {multi[0], broken, multi[2], qr[0]});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, HidPosItem::Kind::fault);
  EXPECT_NE(out[0].reason.find("dropped"), std::string::npos) << out[0].reason;
  ASSERT_EQ(out[1].kind, HidPosItem::Kind::scan);
  EXPECT_EQ(out[1].data, "PORTIER-QR-0001");
}

// REQ-22
TEST(HidPosReportParser, AimChangingMidScanIsAnError) {
  HidPosAssembler a(4096);
  auto out = feed_all(a, {make_report("A", "]Q1", true), make_report("B", "]E0", false)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, HidPosItem::Kind::fault);
  EXPECT_NE(out[0].reason.find("changed"), std::string::npos);
}

// REQ-22
TEST(HidPosReportParser, OverLongScanIsOneFaultThenNextScanWorks) {
  auto multi = load_hex_reports("multi_report.hex");
  auto qr = load_hex_reports("qr_single.hex");
  HidPosAssembler a(100);
  std::vector<std::string> reports = multi;
  reports.push_back(qr[0]);
  auto out = feed_all(a, reports);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].kind, HidPosItem::Kind::fault);
  EXPECT_EQ(out[0].code, "frame_too_long");
  EXPECT_EQ(out[0].reason.find("https"), std::string::npos);
  ASSERT_EQ(out[1].kind, HidPosItem::Kind::scan);
  EXPECT_EQ(out[1].data, "PORTIER-QR-0001");
}

// REQ-22
TEST(HidPosReportParser, ResetForgetsAPartialScan) {
  auto multi = load_hex_reports("multi_report.hex");
  auto qr = load_hex_reports("qr_single.hex");
  HidPosAssembler a(4096);
  EXPECT_EQ(a.feed(multi[0]).kind, HidPosItem::Kind::none);
  a.reset();
  HidPosItem item = a.feed(qr[0]);
  ASSERT_EQ(item.kind, HidPosItem::Kind::scan);
  EXPECT_EQ(item.data, "PORTIER-QR-0001");
}

// Random bytes never crash the parser, never yield a scan above
// max_frame, and never put payload bytes into a fault.
// REQ-22
TEST(HidPosReportParser, RandomBytesNeverCrash) {
  std::mt19937 rng(18030);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> size(0, 80);
  HidPosAssembler a(200);
  int scans = 0, faults = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string r(static_cast<std::size_t>(i % 3 == 0 ? 64 : size(rng)), '\0');
    for (char& c : r) c = static_cast<char>(byte(rng));
    if (!r.empty() && i % 2 == 0) r[0] = 0x02;
    if (r.size() == 64 && i % 4 == 0) {
      r[1] = static_cast<char>(byte(rng) % 57);
      r.replace(2, 3, "]Q1");
    }
    parse_hid_pos_report(r);
    HidPosItem item = a.feed(r);
    if (item.kind == HidPosItem::Kind::scan) {
      ++scans;
      EXPECT_LE(item.data.size(), 200u);
      EXPECT_FALSE(item.data.empty());
    } else if (item.kind == HidPosItem::Kind::fault) {
      ++faults;
      EXPECT_FALSE(item.reason.empty());
      EXPECT_LT(item.reason.size(), 200u);
    }
  }
  EXPECT_GT(scans, 0);
  EXPECT_GT(faults, 0);
}

}  // namespace
}  // namespace portier::drivers
