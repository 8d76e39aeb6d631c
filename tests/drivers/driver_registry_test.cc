// The driver registry: kinds registered by table name with their own parser
// and factory; the registry checks device ids and types, and reports unknown
// keys with the nearest known one.
#include "drivers/driver_registry.h"

#include <gtest/gtest.h>

#include "common/toml_table.h"

namespace portier::drivers {
namespace {

struct WidgetConfig {
  std::string id;
  int speed = 1;
};

class Widget final : public Driver {
 public:
  explicit Widget(WidgetConfig c) : config(std::move(c)) {}
  std::string_view name() const override { return "widget"; }
  Result<void> start(DriverSink&) override { return {}; }
  void stop() override {}
  Result<std::size_t> write(const std::string&, std::string_view d) override { return d.size(); }
  WidgetConfig config;
};

Result<WidgetConfig> parse_widget(TomlTable& t) {
  WidgetConfig c;
  PORTIER_TRY(t.str("id", c.id));
  PORTIER_TRY(t.integer("speed", 1, 10, c.speed));
  return c;
}

struct LampConfig {
  bool on = false;
};
Result<LampConfig> parse_lamp(TomlTable& t) {
  LampConfig c;
  PORTIER_TRY(t.boolean("on", c.on));
  return c;
}

DriverRegistry test_registry() {
  DriverRegistry r;
  r.add_device("widget", "fast", "fast_widget", DriverRegistry::parser(parse_widget),
               DriverRegistry::factory<Widget, WidgetConfig>(), /*is_default=*/true);
  r.add_device("widget", "slow", "slow_widget", DriverRegistry::parser(parse_widget),
               DriverRegistry::factory<Widget, WidgetConfig>());
  r.add_device("gadget", "plain", "gadget", DriverRegistry::parser(parse_widget),
               DriverRegistry::factory<Widget, WidgetConfig>());
  r.add_table("lamp", "lamp", DriverRegistry::parser(parse_lamp), nullptr);
  return r;
}

Result<std::vector<DriverSpec>> parse(const DriverRegistry& r, const std::string& text) {
  auto doc = TomlValue::parse(text, "t.toml", "syntax");
  if (!doc) return std::unexpected(doc.error());
  TomlTable root(*doc, "");
  auto specs = r.parse(root);
  if (!specs) return specs;
  PORTIER_TRY(root.no_unknown_keys());
  return specs;
}

TEST(DriverRegistry, BuildsEachDeviceByItsTypeInTheOrderTablesWereRegistered) {
  auto r = test_registry();
  auto specs = parse(r,
                     "[lamp]\non = true\n"
                     "[[gadget]]\nid = \"g0\"\ntype = \"plain\"\n"
                     "[[widget]]\nid = \"w0\"\nspeed = 3\n"
                     "[[widget]]\nid = \"w1\"\ntype = \"slow\"\n");
  ASSERT_TRUE(specs) << specs.error().message();
  ASSERT_EQ(specs->size(), 4u);
  EXPECT_EQ((*specs)[0].kind, "fast_widget");  // the default type
  EXPECT_EQ((*specs)[1].kind, "slow_widget");
  EXPECT_EQ((*specs)[2].kind, "gadget");
  EXPECT_EQ((*specs)[3].kind, "lamp");
  EXPECT_TRUE(std::any_cast<const LampConfig&>((*specs)[3].config).on);
  auto d = r.build((*specs)[0]);
  ASSERT_TRUE(d);
  EXPECT_EQ(static_cast<Widget&>(*d).config.speed, 3);
  EXPECT_EQ(r.build(DriverSpec{"no_such_kind", {}}), nullptr);
}

TEST(DriverRegistry, AnUnknownTypeNamesTheRegisteredOnes) {
  auto r = parse(test_registry(), "[[widget]]\nid = \"w0\"\ntype = \"medium\"\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "t.toml:3:8: widget[1].type: must be \"fast\" or \"slow\"");
}

TEST(DriverRegistry, DeviceIdsAreCheckedAcrossTables) {
  auto twice =
      parse(test_registry(), "[[widget]]\nid = \"x\"\n[[gadget]]\nid = \"x\"\ntype = \"plain\"\n");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message(), "t.toml:4:6: gadget[1].id: 'x' is used twice");
  auto missing = parse(test_registry(), "[[widget]]\nspeed = 2\n");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(),
            "t.toml:1:1: widget[1].id: required: 1-64 characters of A-Z a-z 0-9 - _ .");
}

TEST(DriverRegistry, UnknownKeysOfAKindsTableSuggestTheNearestKey) {
  auto r = parse(test_registry(), "[[widget]]\nid = \"w0\"\nsped = 2\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "t.toml:3:8: widget[1].sped: unknown key (did you mean 'speed'?) (see README.md, "
            "Configuration)");
  auto lamp = parse(test_registry(), "[lamp]\nonn = true\n");
  ASSERT_FALSE(lamp);
  EXPECT_EQ(lamp.error().message(),
            "t.toml:2:7: lamp.onn: unknown key (did you mean 'on'?) (see README.md, "
            "Configuration)");
}

TEST(DriverRegistry, ATableOfTheWrongShapeIsAnError) {
  auto r = parse(test_registry(), "lamp = 3\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "t.toml:1:8: lamp: must be a [lamp] table");
  auto list = parse(test_registry(), "widget = \"w\"\n");
  ASSERT_FALSE(list);
  EXPECT_EQ(list.error().message(), "t.toml:1:10: widget: must be [[widget]] tables");
}

}  // namespace
}  // namespace portier::drivers
