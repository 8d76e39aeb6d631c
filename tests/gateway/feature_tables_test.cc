// Each agent feature reads its own config table through the feature
// registry; a feature compiled out of this portierd makes its table a clear
// error at the table's line.
#include <gtest/gtest.h>

#include "common/toml_table.h"
#include "daemon/daemon_config.h"

namespace portier::daemon {
namespace {

struct BeaconConfig {
  int period_ms = 1000;
};

class Beacon final : public agent::Feature {
 public:
  std::string_view name() const override { return "beacon"; }
  Result<void> start(const agent::FeatureContext&) override { return {}; }
  void stop() override {}
};

agent::FeatureRegistry registry_without_health() {
  agent::FeatureRegistry r;
  r.add_absent("health");
  r.add(
      "beacon",
      [](TomlTable& t) -> Result<std::any> {
        BeaconConfig c;
        PORTIER_TRY(t.integer("period_ms", 10, 60000, c.period_ms));
        return std::any(c);
      },
      [](const std::any&) -> std::unique_ptr<agent::Feature> {
        return std::make_unique<Beacon>();
      });
  return r;
}

Result<DaemonConfig> parse(const std::string& text) {
  return parse_config(text, "t.toml", builtin_drivers(), registry_without_health());
}

TEST(FeatureTables, AFeatureNotBuiltInIsAnErrorAtItsTable) {
  auto r = parse("log_level = \"info\"\n\n[health]\nmonitor = true\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "t.toml:3:1: health: feature 'health' is not built into this portierd");
}

TEST(FeatureTables, TheHealthGatesOwnKeyNeedsNoHealthFeature) {
  auto r = parse("[health]\nrefuse_when_compromised = [\"transmit\"]\n");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->refuse_when_compromised.size(), 1u);
  EXPECT_TRUE(r->features.empty());
}

TEST(FeatureTables, EachFeatureParsesItsOwnTable) {
  auto r = parse("[beacon]\nperiod_ms = 250\n");
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_EQ(r->features.size(), 1u);
  EXPECT_EQ(r->features[0].name, "beacon");
  EXPECT_EQ(std::any_cast<const BeaconConfig&>(r->features[0].config).period_ms, 250);
  EXPECT_NE(registry_without_health().build(r->features[0]), nullptr);

  auto bad = parse("[beacon]\nperiod_ms = 5\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "t.toml:2:13: beacon.period_ms: must be 10..60000");
  auto typo = parse("[beacon]\nperod_ms = 50\n");
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().message(),
            "t.toml:2:12: beacon.perod_ms: unknown key (did you mean 'period_ms'?) (see README.md, "
            "Configuration)");
  auto shape = parse("beacon = 1\n");
  ASSERT_FALSE(shape);
  EXPECT_EQ(shape.error().message(), "t.toml:1:10: beacon: must be a [beacon] table");
}

TEST(FeatureTables, TheBuiltInHealthFeatureIsOffUnlessMonitorIsTrue) {
  auto on = parse_config("[health]\nmonitor = true\n", "t.toml");
  if (!on && on.error().why.find("not built") != std::string::npos) {
    GTEST_SKIP() << "built with PORTIER_WITH_HEALTH=OFF";
  }
  ASSERT_TRUE(on) << on.error().message();
  auto off = parse_config("[health]\nproc_root = \"/proc\"\n", "t.toml");
  ASSERT_TRUE(off) << off.error().message();
  ASSERT_EQ(off->features.size(), 1u);
  EXPECT_EQ(builtin_features().build(off->features[0]), nullptr);
  auto f = builtin_features().build(on->features[0]);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->name(), "health_monitor");
}

}  // namespace
}  // namespace portier::daemon
