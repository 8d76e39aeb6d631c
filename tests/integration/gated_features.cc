#include "gated_features.h"

#include <unistd.h>

#include <stdexcept>

#include "common/toml_table.h"

namespace portier::test {
namespace {

struct GateConfig {
  std::string control_file;
};

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

class FailingStart final : public agent::Feature {
 public:
  explicit FailingStart(GateConfig c) : c_(std::move(c)) {}
  std::string_view name() const override { return "failing_start"; }
  Result<void> start(const agent::FeatureContext&) override {
    if (exists(c_.control_file)) {
      return fail(Errc::unavailable, "failing_start", "start", "told to fail by the test");
    }
    return {};
  }
  void stop() override {}

 private:
  GateConfig c_;
};

class FailingCheck final : public agent::Feature {
 public:
  explicit FailingCheck(GateConfig c) : c_(std::move(c)) {}
  std::string_view name() const override { return "failing_check"; }
  Result<void> start(const agent::FeatureContext&) override { return {}; }
  Result<void> check() override {
    if (exists(c_.control_file)) throw std::runtime_error("failing_check threw on command");
    return {};
  }
  void stop() override {}

 private:
  GateConfig c_;
};

Result<std::any> parse_gate(TomlTable& t) {
  GateConfig c;
  PORTIER_TRY(t.str("control_file", c.control_file));
  if (c.control_file.empty()) return std::unexpected(t.error("control_file", "required"));
  return std::any(c);
}

}  // namespace

void register_gated_features(agent::FeatureRegistry& registry) {
  registry.add("failing_start", parse_gate,
               [](const std::any& c) -> std::unique_ptr<agent::Feature> {
                 return std::make_unique<FailingStart>(std::any_cast<const GateConfig&>(c));
               });
  registry.add("failing_check", parse_gate,
               [](const std::any& c) -> std::unique_ptr<agent::Feature> {
                 return std::make_unique<FailingCheck>(std::any_cast<const GateConfig&>(c));
               });
}

}  // namespace portier::test
