#include "agent/attest/reference_values.h"

#include <gtest/gtest.h>

#include <vector>

#include "agent/attest/tcg_event_log.h"

namespace portier::attest {
namespace {

// REQ-6: reference values are a provisioned parameter; bad files are refused.
TEST(ReferenceValues, ParseAndRoundTrip) {
  const std::string text =
      "# golden\n\nsha256:7=" + std::string(64, 'a') + "\n sha1:0=" + std::string(40, '0') + "\r\n";
  auto r = parse_reference_values(text);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ((*r)[kAlgSha256][7].size(), 32u);
  EXPECT_EQ((*r)[kAlgSha1][0].size(), 20u);
  auto again = parse_reference_values(format_reference_values(*r));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *r);
}

TEST(ReferenceValues, Rejections) {
  for (std::string bad : std::vector<std::string>{
           "sha256:7=abcd", "md5:1=00", "sha256:24=" + std::string(64, 'a'),
           "sha256 7 " + std::string(64, 'a'), "sha1:1=" + std::string(40, 'g'),
           "sha1:1=" + std::string(40, 'a') + "\nsha1:1=" + std::string(40, 'a')}) {
    auto r = parse_reference_values(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message().find("line "), std::string::npos);
  }
}

}  // namespace
}  // namespace portier::attest
