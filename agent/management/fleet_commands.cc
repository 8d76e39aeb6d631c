#include "agent/management/fleet_commands.h"

#include <optional>
#include <utility>

#include "common/log.h"

namespace portier::management {
namespace {

constexpr std::size_t kMaxQueued = 64;  // commands waiting; more are dropped (the fleet resends)

Result<std::string> needs_control() {
  return fail_msg(Errc::failed_precondition, "this portierd offers no daemon control");
}

}  // namespace

Result<std::unique_ptr<FleetCommands>> FleetCommands::create(
    const std::string& store_path, commands::VerifierOptions options, AuditSink& audit,
    agent::DaemonControl* control, TelemetrySources& sources, Uplink& uplink, std::string source) {
  auto store = commands::CommandStore::open(store_path);
  if (!store) return std::unexpected(store.error());
  std::unique_ptr<FleetCommands> c(new FleetCommands(control, sources, uplink, std::move(source)));
  c->store_ = std::move(*store);
  if (auto v = c->store_->policy_version()) c->policy_version_ = *v;
  c->store_->release();
  if (control) {
    // Audit records the sources' queue had no room for are read back from
    // the trail's files (back-pressure, never a drop).
    sources.set_audit_reader([control](std::uint64_t first, std::uint64_t last) {
      return control->audit_range(first, last);
    });
    // The birth's policy: the file's digest from the daemon, the version
    // from this store (kept here: the store is the commands thread's alone).
    auto* self = c.get();
    sources.set_policy_source([control, self] {
      return PolicyInForce{control->policy_sha256(), self->policy_version_.load()};
    });
  }
  c->executor_ = std::make_unique<commands::CommandExecutor>(*c, *c->store_);
  c->verifier_ = std::make_unique<commands::CommandVerifier>(std::move(options), *c->store_,
                                                             *c->executor_, audit);
  return c;
}

FleetCommands::~FleetCommands() { stop(); }

void FleetCommands::start() {
  for (auto& r : verifier_->interrupted_results()) send(r);
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void FleetCommands::stop() {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  // Every count audited: nothing refused goes unrecorded at shutdown.
  std::uint64_t dropped = 0;
  {
    std::lock_guard lock(mu_);
    dropped = std::exchange(dropped_, 0) + queue_.size();
    queue_.clear();
  }
  verifier_->count_dropped(source_, dropped);
  verifier_->report_refusals(true);
}

void FleetCommands::receive(std::string bytes) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      // Counted and audited with the unauthenticated refusals (a genuine
      // command dropped here is sent again by the fleet, which sees no
      // result).
      if (++dropped_ > 1) return;
    } else {
      queue_.push_back(std::move(bytes));
    }
  }
  cv_.notify_all();
}

void FleetCommands::send(const v1::CommandResult& result) {
  if (!uplink_.submit(v1::PAYLOAD_COMMAND_RESULT, result.SerializeAsString(),
                      outbox::Priority::security)) {
    log_warning("management: the result of command " + result.command_id() +
                " was not queued (the uplink is full); a repeat of the command gets it");
  }
}

// One command at a time. A refusal of a command nobody authenticated is
// not answered (the verifier audits those in aggregate, and their counts
// when each interval ends, here), so a flood from the broker never fills
// the outbox with results at security priority.
void FleetCommands::run() {
  std::unique_lock lock(mu_);
  std::optional<std::chrono::steady_clock::time_point> report_at;
  while (!stopping_) {
    auto ready = [&] { return stopping_ || !queue_.empty() || dropped_ > 0; };
    if (report_at) {
      cv_.wait_until(lock, *report_at, ready);
    } else {
      cv_.wait(lock, ready);
    }
    if (stopping_) break;
    const auto dropped = std::exchange(dropped_, 0);
    std::optional<std::string> bytes;
    if (!queue_.empty()) {
      bytes = std::move(queue_.front());
      queue_.pop_front();
    }
    lock.unlock();
    verifier_->count_dropped(source_, dropped);
    if (bytes) {
      // A repeat answered already in this interval is not sent again (the
      // verifier counts it): replays never grow the outbox.
      auto answer = verifier_->answer(*bytes, source_);
      if (answer.report) send(answer.result);
      if (std::exchange(policy_replaced_, false)) {
        // Recorded with the result by now: a new birth carries both.
        if (auto v = store_->policy_version()) policy_version_ = *v;
        sources_.report_policy_changed();
      }
      ++handled_;
    }
    report_at = verifier_->report_refusals();
    lock.lock();
  }
}

Result<std::string> FleetCommands::run_health_checks(const v1::RunHealthChecks&) {
  if (!control_) return needs_control();
  control_->run_health_checks();
  sources_.report_health_now();
  return std::string("health checks run; a health report follows");
}

Result<std::string> FleetCommands::set_telemetry_intervals(const v1::SetTelemetryIntervals& r) {
  auto bad = [](std::uint32_t s) { return s != 0 && (s < 5 || s > 86400); };
  if (bad(r.health_seconds()) || bad(r.decisions_seconds()) || bad(r.checkpoint_seconds())) {
    return fail_msg(Errc::invalid_argument, "intervals must be 5..86400 seconds (0: unchanged)");
  }
  sources_.set_intervals(std::chrono::seconds(r.health_seconds()),
                         std::chrono::seconds(r.decisions_seconds()),
                         std::chrono::seconds(r.checkpoint_seconds()));
  return std::string("intervals set");
}

Result<std::string> FleetCommands::replace_policy(const v1::ReplacePolicy& r) {
  if (!control_) return needs_control();
  PORTIER_TRY(control_->replace_policy(r.policy_toml()));
  policy_replaced_ = true;
  return "policy version " + std::to_string(r.version()) + " in force";
}

Result<std::string> FleetCommands::usb_authorization(const v1::UsbAuthorization& r) {
  if (!control_) return needs_control();
  return control_->device_action(r.device_id(), r.authorize() ? "authorize" : "deauthorize");
}

Result<std::string> FleetCommands::rotate_device_key(const v1::RotateDeviceKey&) {
  if (!rotate_) {
    return fail_msg(Errc::failed_precondition,
                    "key rotation needs an enrolled identity (enrolment is not configured)");
  }
  return rotate_();
}

Result<std::string> FleetCommands::fetch_audit_range(const v1::FetchAuditRange& r) {
  if (!control_) return needs_control();
  auto lines = control_->audit_range(r.first(), r.last());
  if (!lines) return std::unexpected(lines.error());
  std::string out;
  for (auto& l : *lines) out += l + "\n";
  return out;
}

Result<std::string> FleetCommands::install_certificate(const v1::InstallCertificate& c) {
  if (!install_) {
    return fail_msg(Errc::failed_precondition,
                    "installing a certificate needs an enrolled identity (enrolment is not "
                    "configured)");
  }
  return install_(c);
}

}  // namespace portier::management
