// The fleet's signed commands on this terminal (issue 10, item 6): what
// arrives on the link is queued, verified and run one at a time on its own
// thread (agent/commands: signature, chain, target, window, nonce, once per
// command id), and every answer the verifier reports goes back sealed in a
// signed envelope (PAYLOAD_COMMAND_RESULT); replays of a command are
// answered at most once a minute (CommandVerifier, "Replays"). The
// handlers run each action through the daemon's own paths (DaemonControl)
// and the telemetry sources.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/commands/command_executor.h"
#include "agent/commands/command_store.h"
#include "agent/commands/command_verifier.h"
#include "agent/feature.h"
#include "agent/management/telemetry_sources.h"
#include "agent/management/uplink.h"

namespace portier::management {

class FleetCommands final : public commands::CommandHandlers {
 public:
  // `control` may be null (then the actions that need the daemon fail with
  // a clear reason); the rest must outlive this. With `control`, also gives
  // `sources` (not started yet) what they read of the daemon: the audit
  // trail by record number, and the policy in force for the birth.
  static Result<std::unique_ptr<FleetCommands>> create(
      const std::string& store_path, commands::VerifierOptions options, AuditSink& audit,
      agent::DaemonControl* control, TelemetrySources& sources, Uplink& uplink, std::string source);
  ~FleetCommands() override;

  // RotateDeviceKey and InstallCertificate act on the terminal's identity,
  // which the management feature owns; without these they fail with the
  // reason. Set before start().
  using RotateKey = std::function<Result<std::string>()>;
  using InstallCertificate = std::function<Result<std::string>(const v1::InstallCertificate&)>;
  void set_identity_actions(RotateKey rotate, InstallCertificate install) {
    rotate_ = std::move(rotate);
    install_ = std::move(install);
  }

  // Results of commands a restart interrupted, then the thread.
  void start();
  void stop();
  // A command as received (unverified); never blocks for long.
  void receive(std::string bytes);
  // Commands handed to the verifier so far (answered or not).
  std::uint64_t handled() const { return handled_.load(); }

  Result<std::string> run_health_checks(const v1::RunHealthChecks&) override;
  Result<std::string> set_telemetry_intervals(const v1::SetTelemetryIntervals&) override;
  Result<std::string> replace_policy(const v1::ReplacePolicy&) override;
  Result<std::string> usb_authorization(const v1::UsbAuthorization&) override;
  Result<std::string> rotate_device_key(const v1::RotateDeviceKey&) override;
  Result<std::string> fetch_audit_range(const v1::FetchAuditRange&) override;
  Result<std::string> install_certificate(const v1::InstallCertificate&) override;

 private:
  FleetCommands(agent::DaemonControl* control, TelemetrySources& sources, Uplink& uplink,
                std::string source)
      : control_(control), sources_(sources), uplink_(uplink), source_(std::move(source)) {}
  void run();
  void send(const v1::CommandResult& result);

  agent::DaemonControl* control_;
  TelemetrySources& sources_;
  Uplink& uplink_;
  std::string source_;
  RotateKey rotate_;
  InstallCertificate install_;
  std::unique_ptr<commands::CommandStore> store_;
  std::unique_ptr<commands::CommandExecutor> executor_;
  std::unique_ptr<commands::CommandVerifier> verifier_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::uint64_t dropped_ = 0;
  // The commands thread's: a ReplacePolicy ran (the birth goes again).
  bool policy_replaced_ = false;
  std::atomic<std::uint64_t> policy_version_{0};  // installed by a command
  std::atomic<std::uint64_t> handled_{0};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace portier::management
