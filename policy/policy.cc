#include "policy/policy.h"

#include <algorithm>
#include <array>
#include <bit>

#include "policy/policy_data.h"
#include "policy/policy_file.h"
#include "policy/policy_parser.h"

namespace portier::policy {

// The declarations plus the same rules sliced three ways (by app, by op, and
// whether a rule looks at the device at all), so a decision is a few ANDs.
struct Policy::Impl {
  PolicyData data;
  std::size_t words = 0;                  // ceil(rules / 64)
  std::array<BitSet, kOpCount> op_rules;  // rules that name the op
  std::vector<BitSet> app_rules;          // per declared app: rules that name it
  BitSet any_app_rules;                   // rules with app = "*"
  BitSet any_device_rules;                // rules without device matchers
  std::vector<std::size_t> device_rules;  // indexes of rules with device matchers

  void compile();
  Decision decision_for(std::size_t rule) const;
};

namespace {
void set_bit(BitSet& bits, std::size_t i) { bits[i / 64] |= std::uint64_t{1} << (i % 64); }
}  // namespace

void Policy::Impl::compile() {
  const std::size_t n = data.rules.size();
  words = (n + 63) / 64;
  for (auto& b : op_rules) b.assign(words, 0);
  app_rules.assign(data.apps.size(), BitSet(words, 0));
  any_app_rules.assign(words, 0);
  any_device_rules.assign(words, 0);
  for (std::size_t r = 0; r < n; ++r) {
    const auto& rule = data.rules[r];
    for (int op = 0; op < kOpCount; ++op) {
      if (rule.has_op(static_cast<Op>(op))) set_bit(op_rules[op], r);
    }
    if (rule.any_app) set_bit(any_app_rules, r);
    for (std::size_t a : rule.apps) set_bit(app_rules[a], r);
    if (rule.has_device_matchers()) {
      device_rules.push_back(r);
    } else {
      set_bit(any_device_rules, r);
    }
  }
}

Decision Policy::Impl::decision_for(std::size_t r) const {
  Decision d;
  d.allow = data.rules[r].allow;
  d.require_health = data.rules[r].require_health;
  d.rule = static_cast<int>(r + 1);
  d.line = data.rules[r].line;
  d.source = data.source;
  return d;
}

Policy::Policy() : impl_(std::make_unique<Impl>()) {}
Policy::~Policy() = default;

Result<std::shared_ptr<const Policy>> Policy::parse(std::string_view text,
                                                    const std::string& source) {
  auto data = parse_policy_text(text, source);
  if (!data) return std::unexpected(std::move(data.error()));
  // The constructor is private, so no make_shared.
  std::shared_ptr<Policy> p(new Policy());
  p->impl_->data = std::move(*data);
  p->impl_->compile();
  return std::shared_ptr<const Policy>(std::move(p));
}

Result<std::shared_ptr<const Policy>> Policy::load_file(const std::string& path) {
  auto text = read_policy_file(path);
  if (!text) return std::unexpected(std::move(text.error()));
  return parse(*text, path);
}

BitSet Policy::rules_for_caller(const Caller& caller) const {
  BitSet bits = impl_->any_app_rules;
  for (std::size_t a = 0; a < impl_->data.apps.size(); ++a) {
    if (!impl_->data.apps[a].matches(caller)) continue;
    const BitSet& app = impl_->app_rules[a];
    for (std::size_t w = 0; w < bits.size(); ++w) bits[w] |= app[w];
  }
  return bits;
}

BitSet Policy::rules_for_device(const DeviceRef& device) const {
  BitSet bits = impl_->any_device_rules;
  for (std::size_t r : impl_->device_rules) {
    if (impl_->data.rules[r].matches_device(device)) set_bit(bits, r);
  }
  return bits;
}

std::string Policy::app_name(const Caller& caller) const {
  for (const auto& app : impl_->data.apps) {
    if (app.matches(caller)) return app.name;
  }
  return {};
}

std::vector<std::string> Policy::app_names(const Caller& caller) const {
  std::vector<std::string> names;
  for (const auto& app : impl_->data.apps) {
    if (app.matches(caller)) names.push_back(app.name);
  }
  return names;
}

Decision Policy::decide(const BitSet& caller_rules, const BitSet& device_rules, Op op) const {
  const auto op_index = static_cast<std::size_t>(op);
  if (op_index < impl_->op_rules.size()) {
    const BitSet& ops = impl_->op_rules[op_index];
    // Bitsets from another policy generation may have another size: missing
    // words count as empty, extra words are ignored.
    const std::size_t n = std::min({caller_rules.size(), device_rules.size(), ops.size()});
    for (std::size_t w = 0; w < n; ++w) {
      const std::uint64_t hit = caller_rules[w] & device_rules[w] & ops[w];
      if (hit != 0) return impl_->decision_for(w * 64 + std::countr_zero(hit));
    }
  }
  Decision d;
  d.source = impl_->data.source;
  return d;
}

bool Policy::may_allow_any(const BitSet& caller_rules, Op op) const {
  const auto op_index = static_cast<std::size_t>(op);
  if (op_index >= impl_->op_rules.size()) return false;
  const BitSet& ops = impl_->op_rules[op_index];
  const std::size_t n = std::min(caller_rules.size(), ops.size());
  for (std::size_t w = 0; w < n; ++w) {
    for (std::uint64_t m = caller_rules[w] & ops[w]; m != 0; m &= m - 1) {
      if (impl_->decision_for(w * 64 + std::countr_zero(m)).allow) return true;
    }
  }
  return false;
}

Decision Policy::decide(const Caller& caller, const DeviceRef& device, Op op) const {
  // Same answer as decide(rules_for_caller(), rules_for_device(), op), but the
  // device is matched only against the rules that could still decide, in
  // order, instead of against every rule.
  Decision d;
  d.source = impl_->data.source;
  const auto op_index = static_cast<std::size_t>(op);
  if (op_index < impl_->op_rules.size()) {
    const BitSet candidates = rules_for_caller(caller);
    const BitSet& ops = impl_->op_rules[op_index];
    bool found = false;
    for (std::size_t w = 0; w < candidates.size() && !found; ++w) {
      for (std::uint64_t m = candidates[w] & ops[w]; m != 0; m &= m - 1) {
        const std::size_t r = w * 64 + std::countr_zero(m);
        if (impl_->data.rules[r].matches_device(device)) {
          d = impl_->decision_for(r);
          found = true;
          break;
        }
      }
    }
  }
  d.app = app_name(caller);
  return d;
}

const std::string& Policy::source() const { return impl_->data.source; }
std::size_t Policy::rule_count() const { return impl_->data.rules.size(); }
std::size_t Policy::app_count() const { return impl_->data.apps.size(); }

}  // namespace portier::policy
