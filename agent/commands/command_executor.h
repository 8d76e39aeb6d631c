// Runs a verified fleet command (proto/portier/v1/command.proto): one
// handler per action behind CommandHandlers, which the management feature
// implements on the daemon's own paths (the policy through the same reload
// as a local edit, USB authorization through the device hub, ...).
//
// The executor checks what the command asks before anything runs (check():
// an action is set, ReplacePolicy's version is above the last one a command
// installed, FetchAuditRange asks for 1 to 1000 records, ...), so such a
// command is refused like a forged one, before its nonce is consumed; run()
// checks again and calls the handler.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/commands/command_store.h"
#include "common/result.h"
#include "portier/v1/command.pb.h"

namespace portier::commands {

// At most this many audit records per FetchAuditRange.
inline constexpr std::uint64_t kMaxAuditRange = 1000;

// Each returns the result's output (CommandResult.output), or an error whose
// message becomes the FAILED result's message. Called one command at a time,
// from the thread that handed the command in.
class CommandHandlers {
 public:
  virtual ~CommandHandlers() = default;
  // The text, echoed.
  virtual Result<std::string> ping(const v1::Ping& ping);
  virtual Result<std::string> run_health_checks(const v1::RunHealthChecks& request) = 0;
  virtual Result<std::string> set_telemetry_intervals(const v1::SetTelemetryIntervals& request) = 0;
  // Through the daemon's policy reload path: an error when it refuses the
  // policy (the old one stays, and the version is not consumed).
  virtual Result<std::string> replace_policy(const v1::ReplacePolicy& request) = 0;
  virtual Result<std::string> usb_authorization(const v1::UsbAuthorization& request) = 0;
  // The new key's CSR (PEM).
  virtual Result<std::string> rotate_device_key(const v1::RotateDeviceKey& request) = 0;
  // The records' JSON lines; at most kMaxAuditRange records are ever asked.
  virtual Result<std::string> fetch_audit_range(const v1::FetchAuditRange& request) = 0;
  virtual Result<std::string> install_certificate(const v1::InstallCertificate& request) = 0;
};

// "ping", "run_health_checks", ...: the oneof's field name; "" when none.
std::string_view action_name(const v1::Command& command);

class CommandExecutor {
 public:
  // Both must outlive the executor.
  CommandExecutor(CommandHandlers& handlers, CommandStore& store)
      : handlers_(handlers), store_(store) {}

  // Ok when the command may run as asked. invalid_argument (what is wrong
  // with it) or failed_precondition (a ReplacePolicy version not above the
  // installed one); io when the store cannot be read.
  Result<void> check(const v1::Command& command);

  struct Run {
    Outcome outcome;
    // A ReplacePolicy that succeeded: its version, to record with the result.
    std::optional<std::uint64_t> policy_version;
  };
  // Runs `command`, verified and recorded as started.
  Run run(const v1::Command& command);

 private:
  Result<std::string> dispatch(const v1::Command& command);

  CommandHandlers& handlers_;
  CommandStore& store_;
};

}  // namespace portier::commands
