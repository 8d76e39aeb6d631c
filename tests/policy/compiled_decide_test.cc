// The bitset path against a straightforward first-match evaluation, on
// random policies and on rule counts that span many 64-bit words.
#include <fnmatch.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "policy_under_test.h"

namespace portier::policy {
namespace {

constexpr unsigned kAllOps = (1u << kOpCount) - 1;

using testing::caller_with;
using testing::device_with;
using testing::must_parse;

// ---- an independent model of a policy, evaluated the obvious way ----

struct ModelApp {
  std::string name;
  std::vector<std::uint32_t> uids, gids;
  std::string exe, sha256, unit;

  bool matches(const Caller& c) const {
    auto in = [](const std::vector<std::uint32_t>& v, std::uint32_t x) {
      for (auto y : v) {
        if (y == x) return true;
      }
      return false;
    };
    return (uids.empty() || in(uids, c.uid)) && (gids.empty() || in(gids, c.gid)) &&
           (exe.empty() || exe == c.exe) && (sha256.empty() || sha256 == c.sha256) &&
           (unit.empty() || unit == c.unit);
  }
};

struct ModelRule {
  bool any_app = false;
  bool use_apps_key = false;
  std::vector<std::size_t> apps;
  std::optional<std::string> device, device_class;
  std::vector<std::pair<std::string, std::string>> attributes;
  unsigned ops = 0;
  bool allow = true;
  int line = 0;
};

struct Model {
  std::vector<ModelApp> apps;
  std::vector<ModelRule> rules;

  Decision decide(const Caller& c, const DeviceRef& d, Op op) const {
    Decision out;
    out.source = "p.toml";
    for (const auto& a : apps) {
      if (a.matches(c)) {
        out.app = a.name;
        break;
      }
    }
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const auto& r = rules[i];
      bool app_ok = r.any_app;
      for (auto a : r.apps) app_ok = app_ok || apps[a].matches(c);
      if (!app_ok) continue;
      if (r.device && fnmatch(r.device->c_str(), d.id.c_str(), 0) != 0) continue;
      if (r.device_class && *r.device_class != d.device_class) continue;
      bool attrs_ok = true;
      for (const auto& [k, g] : r.attributes) {
        auto it = d.attributes.find(k);
        attrs_ok =
            attrs_ok && it != d.attributes.end() && fnmatch(g.c_str(), it->second.c_str(), 0) == 0;
      }
      if (!attrs_ok) continue;
      if (!((r.ops >> static_cast<unsigned>(op)) & 1u)) continue;
      out.allow = r.allow;
      out.rule = static_cast<int>(i + 1);
      out.line = r.line;
      return out;
    }
    return out;
  }

  // Writes TOML and records each rule's header line.
  std::string to_toml() {
    std::string s = "version = 1\n";
    int line = 1;
    auto add = [&](const std::string& l) {
      s += l + "\n";
      ++line;
    };
    auto ids = [](const std::vector<std::uint32_t>& v) {
      if (v.size() == 1) return std::to_string(v[0]);
      std::string out = "[";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
      return out + "]";
    };
    for (const auto& a : apps) {
      add("[[app]]");
      add("name = \"" + a.name + "\"");
      if (!a.uids.empty()) add("uid = " + ids(a.uids));
      if (!a.gids.empty()) add("gid = " + ids(a.gids));
      if (!a.exe.empty()) add("exe = \"" + a.exe + "\"");
      if (!a.sha256.empty()) add("sha256 = \"" + a.sha256 + "\"");
      if (!a.unit.empty()) add("unit = \"" + a.unit + "\"");
    }
    static const char* kOps[] = {"list",      "watch",    "read", "claim",     "write",
                                 "configure", "transmit", "pair", "authorize", "power"};
    for (auto& r : rules) {
      add("");
      r.line = line + 1;
      add("[[rule]]");
      if (r.use_apps_key) {
        std::string l = "apps = [";
        bool first = true;
        if (r.any_app) {
          l += "\"*\"";
          first = false;
        }
        for (auto a : r.apps) {
          l += (first ? "\"" : ", \"") + apps[a].name + "\"";
          first = false;
        }
        add(l + "]");
      } else {
        add(std::string("app = \"") + (r.any_app ? "*" : apps[r.apps.at(0)].name) + "\"");
      }
      if (r.device) add("device = \"" + *r.device + "\"");
      if (r.device_class) add("class = \"" + *r.device_class + "\"");
      if (!r.attributes.empty()) {
        std::string l = "attributes = {";
        for (std::size_t i = 0; i < r.attributes.size(); ++i) {
          l += (i ? ", " : " ") + r.attributes[i].first + " = \"" + r.attributes[i].second + "\"";
        }
        add(l + " }");
      }
      std::string l = "ops = [";
      bool first = true;
      if (r.ops == kAllOps && (line % 2) == 0) {
        l += "\"*\"";
      } else {
        for (int i = 0; i < kOpCount; ++i) {
          if (!((r.ops >> i) & 1u)) continue;
          l += std::string(first ? "\"" : ", \"") + kOps[i] + "\"";
          first = false;
        }
      }
      add(l + "]");
      if (!r.allow) add("effect = \"deny\"");
    }
    return s;
  }
};

// ---- random generation from small pools so that matches are frequent ----

const std::vector<std::uint32_t> kIds = {0, 1000, 1001, 1002, 65534};
const std::vector<std::string> kExes = {"/usr/bin/a", "/usr/bin/b", "/opt/c/bin/c"};
const std::vector<std::string> kDigests = {std::string(64, 'a'),
                                           std::string(32, '0') + std::string(32, 'f')};
const std::vector<std::string> kUnits = {"a.service", "b.service"};
const std::vector<std::string> kDeviceIds = {"scanner0", "scanner1", "nfc0", "printer-usb",
                                             "pinpad0",  "gnss0",    "nfc12"};
const std::vector<std::string> kDeviceGlobs = {"*",       "scanner*", "nfc?",         "*-usb",
                                               "pinpad0", "[sp]*",    "scanner[0-1]", "gnss0"};
const std::vector<std::string> kClasses = {"scanner", "nfc", "printer", "pinpad"};
const std::vector<std::string> kAttrKeys = {"vendor", "model"};
const std::vector<std::string> kAttrValues = {"0c2e", "05e0", "1500g"};
const std::vector<std::string> kAttrGlobs = {"0c2e*", "05e0", "*", "1500?"};

class Random {
 public:
  explicit Random(std::uint32_t seed) : gen_(seed) {}
  std::size_t below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(gen_);
  }
  bool chance(int percent) { return below(100) < static_cast<std::size_t>(percent); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

 private:
  std::mt19937 gen_;
};

Model random_model(Random& rnd) {
  Model m;
  const std::size_t napps = rnd.below(7);
  for (std::size_t i = 0; i < napps; ++i) {
    ModelApp a;
    a.name = "app" + std::to_string(i);
    do {
      if (rnd.chance(50)) {
        a.uids = {rnd.pick(kIds)};
        if (rnd.chance(30)) a.uids.push_back(rnd.pick(kIds));
      }
      if (rnd.chance(30)) a.gids = {rnd.pick(kIds)};
      if (rnd.chance(30)) a.exe = rnd.pick(kExes);
      if (rnd.chance(20)) a.sha256 = rnd.pick(kDigests);
      if (rnd.chance(20)) a.unit = rnd.pick(kUnits);
    } while (a.uids.empty() && a.gids.empty() && a.exe.empty() && a.sha256.empty() &&
             a.unit.empty());
    m.apps.push_back(std::move(a));
  }
  // Mostly small policies, some spanning several words.
  const std::size_t nrules = rnd.chance(25) ? 60 + rnd.below(200) : rnd.below(20);
  for (std::size_t i = 0; i < nrules; ++i) {
    ModelRule r;
    if (m.apps.empty() || rnd.chance(20)) {
      r.any_app = true;
    } else {
      r.apps.push_back(rnd.below(m.apps.size()));
    }
    if (!m.apps.empty() && rnd.chance(25)) {
      r.use_apps_key = true;
      const auto extra = rnd.below(m.apps.size());
      if (std::find(r.apps.begin(), r.apps.end(), extra) == r.apps.end()) r.apps.push_back(extra);
    }
    if (rnd.chance(50)) r.device = rnd.pick(kDeviceGlobs);
    if (rnd.chance(25)) r.device_class = rnd.pick(kClasses);
    if (rnd.chance(25)) {
      r.attributes.emplace_back(kAttrKeys[0], rnd.pick(kAttrGlobs));
      if (rnd.chance(40)) r.attributes.emplace_back(kAttrKeys[1], rnd.pick(kAttrGlobs));
    }
    r.ops = rnd.chance(15) ? kAllOps : static_cast<unsigned>(1 + rnd.below(kAllOps));
    r.allow = rnd.chance(70);
    m.rules.push_back(std::move(r));
  }
  return m;
}

Caller random_caller(Random& rnd) {
  Caller c;
  c.uid = rnd.pick(kIds);
  c.gid = rnd.pick(kIds);
  c.pid = 100;
  c.exe = rnd.pick(kExes);
  c.sha256 = rnd.chance(80) ? rnd.pick(kDigests) : "";
  c.unit = rnd.chance(70) ? rnd.pick(kUnits) : "";
  return c;
}

DeviceRef random_device(Random& rnd) {
  DeviceRef d;
  d.id = rnd.pick(kDeviceIds);
  d.device_class = rnd.pick(kClasses);
  for (const auto& k : kAttrKeys) {
    if (rnd.chance(70)) d.attributes[k] = rnd.pick(kAttrValues);
  }
  return d;
}

TEST(policy_compiled, AgreesWithNaiveEvaluationOnRandomPolicies) {
  Random rnd(20240917);
  int decisions = 0, allowed = 0, defaulted = 0;
  for (int n = 0; n < 200; ++n) {
    Model model = random_model(rnd);
    const std::string text = model.to_toml();
    auto p = Policy::parse(text, "p.toml");
    ASSERT_TRUE(p.has_value()) << p.error().message() << "\n" << text;
    const Policy& policy = **p;
    ASSERT_EQ(policy.rule_count(), model.rules.size());
    ASSERT_EQ(policy.app_count(), model.apps.size());
    for (int ci = 0; ci < 12; ++ci) {
      const Caller caller = random_caller(rnd);
      const BitSet caller_rules = policy.rules_for_caller(caller);
      ASSERT_EQ(caller_rules.size(), (model.rules.size() + 63) / 64);
      std::vector<std::string> expected_names;
      for (const auto& a : model.apps) {
        if (a.matches(caller)) expected_names.push_back(a.name);
      }
      ASSERT_EQ(policy.app_names(caller), expected_names);
      for (int di = 0; di < 8; ++di) {
        const DeviceRef device = random_device(rnd);
        const BitSet device_rules = policy.rules_for_device(device);
        for (int o = 0; o < kOpCount; ++o) {
          const Op op = static_cast<Op>(o);
          const Decision want = model.decide(caller, device, op);
          const Decision got = policy.decide(caller_rules, device_rules, op);
          const Decision conv = policy.decide(caller, device, op);
          ASSERT_EQ(got.allow, want.allow) << "policy " << n << "\n" << text;
          ASSERT_EQ(got.rule, want.rule) << "policy " << n << "\n" << text;
          ASSERT_EQ(got.line, want.line) << "policy " << n << "\n" << text;
          ASSERT_EQ(got.source, "p.toml");
          ASSERT_EQ(conv.allow, want.allow);
          ASSERT_EQ(conv.rule, want.rule);
          ASSERT_EQ(conv.app, want.app);
          ++decisions;
          allowed += want.allow ? 1 : 0;
          defaulted += want.rule == 0 ? 1 : 0;
        }
      }
    }
  }
  // The generator must exercise allow, deny and the default, or the test proves little.
  EXPECT_GT(allowed, decisions / 20);
  EXPECT_GT(decisions - allowed - defaulted, decisions / 50);
  EXPECT_GT(defaulted, decisions / 20);
}

std::string many_rules(int n) {
  std::string s = "version = 1\n[[app]]\nname = \"a\"\nuid = 1\n";
  for (int i = 0; i < n; ++i) {
    s += "[[rule]]\napp = \"a\"\ndevice = \"dev" + std::to_string(i) + "\"\nops = [\"read\"]\n";
    if (i % 2) s += "effect = \"deny\"\n";
  }
  return s;
}

TEST(policy_compiled, BitsetsHaveOneWordPer64Rules) {
  for (int n : {0, 1, 63, 64, 65, 128, 129, 1000}) {
    auto p = must_parse(many_rules(n));
    ASSERT_TRUE(p);
    const std::size_t words = (static_cast<std::size_t>(n) + 63) / 64;
    EXPECT_EQ(p->rules_for_caller(caller_with(1)).size(), words) << n;
    EXPECT_EQ(p->rules_for_device(device_with("dev0")).size(), words) << n;
  }
}

TEST(policy_compiled, FindsRulesBeyondTheFirstWord) {
  auto p = must_parse(many_rules(130));
  ASSERT_TRUE(p);
  const Caller a = caller_with(1);
  const BitSet cr = p->rules_for_caller(a);
  for (int i : {0, 1, 62, 63, 64, 65, 100, 127, 128, 129}) {
    const auto d =
        p->decide(cr, p->rules_for_device(device_with("dev" + std::to_string(i))), Op::read);
    EXPECT_EQ(d.rule, i + 1) << i;
    EXPECT_EQ(d.allow, i % 2 == 0) << i;
    EXPECT_EQ(d.line, 5 + 4 * i + i / 2) << i;  // 4 lines per rule, 5 for odd ones
  }
  EXPECT_EQ(p->decide(cr, p->rules_for_device(device_with("dev130")), Op::read).rule, 0);
  EXPECT_EQ(p->decide(cr, p->rules_for_device(device_with("dev129")), Op::write).rule, 0);
}

TEST(policy_compiled, ThousandRulesLastOneDecides) {
  std::string s = "version = 1\n[[app]]\nname = \"a\"\nuid = 1\n";
  for (int i = 0; i < 999; ++i) {
    s += "[[rule]]\napp = \"a\"\ndevice = \"scanner*\"\nops = [\"read\", \"write\"]\n";
  }
  s += "[[rule]]\napp = \"*\"\ndevice = \"scanner*\"\nops = [\"read\"]\neffect = \"deny\"\n";
  auto p = must_parse(s);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->rule_count(), 1000u);
  const DeviceRef dev = device_with("scanner7");
  const auto stranger = p->decide(caller_with(2), dev, Op::read);
  EXPECT_EQ(stranger.rule, 1000);
  EXPECT_FALSE(stranger.allow);
  EXPECT_EQ(stranger.line, 5 + 4 * 999);
  const auto member = p->decide(caller_with(1), dev, Op::read);
  EXPECT_EQ(member.rule, 1);
  EXPECT_TRUE(member.allow);
  EXPECT_EQ(p->decide(caller_with(2), dev, Op::write).rule, 0);
}

TEST(policy_compiled, MismatchedBitsetsDenyInsteadOfCrashing) {
  auto p = must_parse(many_rules(100));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->decide(BitSet{}, BitSet{}, Op::read).rule, 0);
  // Bitsets kept from an older, smaller policy: only the overlap counts.
  const BitSet one_word{~std::uint64_t{0}};
  EXPECT_EQ(p->decide(one_word, one_word, Op::read).rule, 1);
  const BitSet too_long(10, 0);
  EXPECT_EQ(p->decide(too_long, too_long, Op::read).rule, 0);
  EXPECT_EQ(p->decide(one_word, one_word, static_cast<Op>(17)).rule, 0);
}

}  // namespace
}  // namespace portier::policy
