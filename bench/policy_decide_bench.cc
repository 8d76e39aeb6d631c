// Cost of one policy decision with 1,000 rules: the compiled bitset path,
// the convenience path that recomputes the bitsets, and a naive first-match
// loop over the same rules. Prints a summary line with the ratio.
#include <benchmark/benchmark.h>
#include <fnmatch.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace {

using portier::policy::BitSet;
using portier::policy::Caller;
using portier::policy::Decision;
using portier::policy::DeviceRef;
using portier::policy::Op;
using portier::policy::Policy;

constexpr int kRules = 1000;
constexpr int kApps = 50;

// ---- the same rules, as a naive evaluator would hold them ----

struct NaiveApp {
  std::uint32_t uid;
  std::string exe;
};

struct NaiveRule {
  int app = -1;  // -1 = any caller
  std::optional<std::string> device;
  std::optional<std::string> device_class;
  std::map<std::string, std::string> attributes;
  unsigned ops = 0;
  bool allow = true;
};

struct Fixture {
  std::vector<NaiveApp> apps;
  std::vector<NaiveRule> rules;
  std::string toml;
  std::shared_ptr<const Policy> policy;
  Caller caller;
  DeviceRef device;
  Op op = Op::write;
};

// 1,000 rules spread over 50 apps and a dozen device shapes; for the probed
// caller, device and op only the very last rule matches, so both evaluators
// walk the whole list (the worst case short of default deny).
Fixture make_fixture() {
  Fixture f;
  static const char* kOps[] = {"list", "watch", "read", "claim", "write", "configure"};
  f.toml = "version = 1\n";
  for (int a = 0; a < kApps; ++a) {
    NaiveApp app{static_cast<std::uint32_t>(2000 + a), "/opt/app" + std::to_string(a) + "/bin/app"};
    f.toml += "[[app]]\nname = \"app" + std::to_string(a) + "\"\nuid = " + std::to_string(app.uid) +
              "\nexe = \"" + app.exe + "\"\n";
    f.apps.push_back(app);
  }
  for (int i = 0; i < kRules; ++i) {
    NaiveRule r;
    if (i == kRules - 1) {
      r.app = kApps - 1;
      r.device = "target*";
      r.device_class = "scanner";
      r.ops = 1u << static_cast<unsigned>(Op::write);
    } else {
      r.app = i % 7 == 0 ? -1 : i % kApps;
      switch (i % 4) {
        case 0:
          r.device = "dev-" + std::to_string(i) + "*";
          break;
        case 1:
          r.device_class = "class" + std::to_string(i % 13);
          break;
        case 2:
          r.attributes["vendor"] = "v" + std::to_string(i) + "?";
          break;
        default:
          r.device = "target*";  // device matches, but not for this caller or op
          break;
      }
      r.ops = (i % 3 == 0) ? (1u << static_cast<unsigned>(Op::write)) : 0x0fu;
      // Rules that would catch the probed caller and device stay off the probed op.
      if ((r.app == -1 || r.app == kApps - 1) && i % 4 == 3) r.ops = 0x0fu;
      r.allow = i % 5 != 0;
    }
    f.toml += "[[rule]]\napp = \"" +
              (r.app < 0 ? std::string("*") : "app" + std::to_string(r.app)) + "\"\n";
    if (r.device) f.toml += "device = \"" + *r.device + "\"\n";
    if (r.device_class) f.toml += "class = \"" + *r.device_class + "\"\n";
    for (const auto& [k, v] : r.attributes)
      f.toml += "attributes = { " + k + " = \"" + v + "\" }\n";
    f.toml += "ops = [";
    for (int o = 0; o < portier::policy::kOpCount; ++o) {
      if ((r.ops >> o) & 1u) f.toml += std::string("\"") + kOps[o] + "\", ";
    }
    f.toml += "]\n";
    if (!r.allow) f.toml += "effect = \"deny\"\n";
    f.rules.push_back(std::move(r));
  }
  auto parsed = Policy::parse(f.toml, "/etc/portier/policy.toml");
  if (!parsed) {
    std::fprintf(stderr, "bench policy does not parse: %s\n", parsed.error().message().c_str());
    std::exit(1);
  }
  f.policy = *parsed;
  f.caller = Caller{.uid = 2000 + kApps - 1,
                    .gid = 100,
                    .pid = 4242,
                    .exe = "/opt/app49/bin/app",
                    .sha256 = std::string(64, 'a'),
                    .unit = "app49.service"};
  f.device = DeviceRef{.id = "target-scanner0",
                       .device_class = "scanner",
                       .attributes = {{"vendor", "0c2e"}, {"model", "1500g"}}};
  return f;
}

const Fixture& fixture() {
  static const Fixture f = make_fixture();
  return f;
}

// The baseline: look at every rule in order, matching app, device and op.
int naive_decide(const Fixture& f, const Caller& c, const DeviceRef& d, Op op, bool* allow) {
  const unsigned op_bit = 1u << static_cast<unsigned>(op);
  for (std::size_t i = 0; i < f.rules.size(); ++i) {
    const NaiveRule& r = f.rules[i];
    if (!(r.ops & op_bit)) continue;
    if (r.app >= 0) {
      const NaiveApp& a = f.apps[static_cast<std::size_t>(r.app)];
      if (a.uid != c.uid || a.exe != c.exe) continue;
    }
    if (r.device && ::fnmatch(r.device->c_str(), d.id.c_str(), 0) != 0) continue;
    if (r.device_class && *r.device_class != d.device_class) continue;
    bool attrs = true;
    for (const auto& [k, g] : r.attributes) {
      auto it = d.attributes.find(k);
      if (it == d.attributes.end() || ::fnmatch(g.c_str(), it->second.c_str(), 0) != 0) {
        attrs = false;
        break;
      }
    }
    if (!attrs) continue;
    *allow = r.allow;
    return static_cast<int>(i + 1);
  }
  *allow = false;
  return 0;
}

void BM_CompiledDecide(benchmark::State& state) {
  const Fixture& f = fixture();
  const BitSet cr = f.policy->rules_for_caller(f.caller);
  const BitSet dr = f.policy->rules_for_device(f.device);
  for (auto _ : state) {
    Decision d = f.policy->decide(cr, dr, f.op);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_CompiledDecide)->Unit(benchmark::kNanosecond);

void BM_ConvenienceDecide(benchmark::State& state) {
  const Fixture& f = fixture();
  for (auto _ : state) {
    Decision d = f.policy->decide(f.caller, f.device, f.op);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_ConvenienceDecide)->Unit(benchmark::kNanosecond);

void BM_NaiveDecide(benchmark::State& state) {
  const Fixture& f = fixture();
  for (auto _ : state) {
    bool allow = false;
    int rule = naive_decide(f, f.caller, f.device, f.op, &allow);
    benchmark::DoNotOptimize(rule);
    benchmark::DoNotOptimize(allow);
  }
}
BENCHMARK(BM_NaiveDecide)->Unit(benchmark::kNanosecond);

// Paid once per connection and once per device, not per decision.
void BM_RulesForCaller(benchmark::State& state) {
  const Fixture& f = fixture();
  for (auto _ : state) {
    BitSet b = f.policy->rules_for_caller(f.caller);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(BM_RulesForCaller)->Unit(benchmark::kNanosecond);

void BM_RulesForDevice(benchmark::State& state) {
  const Fixture& f = fixture();
  for (auto _ : state) {
    BitSet b = f.policy->rules_for_device(f.device);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(BM_RulesForDevice)->Unit(benchmark::kNanosecond);

// Console output as usual, plus the per-iteration times for the summary.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type == Run::RT_Iteration && !r.error_occurred) {
        ns[r.run_name.function_name] = r.GetAdjustedRealTime();  // all benchmarks use ns
      }
    }
  }
  std::map<std::string, double> ns;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // Both evaluators must agree before their speed means anything.
  const Fixture& f = fixture();
  bool naive_allow = false;
  const int naive_rule = naive_decide(f, f.caller, f.device, f.op, &naive_allow);
  const Decision compiled = f.policy->decide(f.policy->rules_for_caller(f.caller),
                                             f.policy->rules_for_device(f.device), f.op);
  if (naive_rule != compiled.rule || naive_allow != compiled.allow || compiled.rule != kRules) {
    std::fprintf(stderr, "evaluators disagree: naive rule %d, compiled rule %d\n", naive_rule,
                 compiled.rule);
    return 1;
  }

  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  auto get = [&](const char* name) {
    auto it = reporter.ns.find(name);
    return it == reporter.ns.end() ? -1.0 : it->second;
  };
  const double x = get("BM_CompiledDecide");
  const double conv = get("BM_ConvenienceDecide");
  const double y = get("BM_NaiveDecide");
  std::printf("\npolicy decide %d rules (%zu words per bitset), deciding rule %d of %d:\n", kRules,
              f.policy->rules_for_caller(f.caller).size(), compiled.rule, kRules);
  std::printf("  compiled decide(BitSet, BitSet, Op): %.1f ns\n", x);
  std::printf("  convenience decide(Caller, DeviceRef, Op): %.1f ns\n", conv);
  std::printf("  naive first-match loop: %.1f ns\n", y);
  std::printf(
      "  rules_for_caller: %.1f ns, rules_for_device: %.1f ns (once per connection/device)\n",
      get("BM_RulesForCaller"), get("BM_RulesForDevice"));
  if (x > 0 && y > 0) {
    std::printf(
        "policy decide 1000 rules: compiled %.1f ns, naive %.1f ns, ratio %.1f (target: "
        "compiled < 1000 ns: %s)\n",
        x, y, y / x, x < 1000.0 ? "met" : "NOT met");
  }
  return 0;
}
