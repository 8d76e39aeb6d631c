#include "agent/commands/command_executor.h"

#include <exception>

namespace portier::commands {

Result<std::string> CommandHandlers::ping(const v1::Ping& ping) { return ping.text(); }

std::string_view action_name(const v1::Command& command) {
  switch (command.action_case()) {
    case v1::Command::kPing:
      return "ping";
    case v1::Command::kRunHealthChecks:
      return "run_health_checks";
    case v1::Command::kSetTelemetryIntervals:
      return "set_telemetry_intervals";
    case v1::Command::kReplacePolicy:
      return "replace_policy";
    case v1::Command::kUsbAuthorization:
      return "usb_authorization";
    case v1::Command::kRotateDeviceKey:
      return "rotate_device_key";
    case v1::Command::kFetchAuditRange:
      return "fetch_audit_range";
    case v1::Command::kInstallCertificate:
      return "install_certificate";
    case v1::Command::ACTION_NOT_SET:
      break;
  }
  return {};
}

Result<void> CommandExecutor::check(const v1::Command& command) {
  switch (command.action_case()) {
    case v1::Command::ACTION_NOT_SET:
      return fail_msg(Errc::invalid_argument, "no action (or one this terminal does not know)");
    case v1::Command::kReplacePolicy: {
      const auto& p = command.replace_policy();
      if (p.policy_toml().empty()) return fail_msg(Errc::invalid_argument, "empty policy");
      auto installed = store_.policy_version();
      if (!installed) return std::unexpected(installed.error());
      if (p.version() <= *installed) {
        return fail_msg(Errc::failed_precondition, "policy version " + std::to_string(p.version()) +
                                                       " is not above the installed version " +
                                                       std::to_string(*installed));
      }
      return {};
    }
    case v1::Command::kFetchAuditRange: {
      const auto& r = command.fetch_audit_range();
      if (r.first() < 1 || r.last() < r.first()) {
        return fail_msg(Errc::invalid_argument, "audit range " + std::to_string(r.first()) + ".." +
                                                    std::to_string(r.last()) +
                                                    " is empty (records are numbered from 1)");
      }
      if (r.last() - r.first() >= kMaxAuditRange) {
        return fail_msg(Errc::invalid_argument, "audit range " + std::to_string(r.first()) + ".." +
                                                    std::to_string(r.last()) + " holds more than " +
                                                    std::to_string(kMaxAuditRange) + " records");
      }
      return {};
    }
    case v1::Command::kUsbAuthorization:
      if (command.usb_authorization().device_id().empty()) {
        return fail_msg(Errc::invalid_argument, "no device id");
      }
      return {};
    case v1::Command::kInstallCertificate:
      if (command.install_certificate().certificate().empty()) {
        return fail_msg(Errc::invalid_argument, "no certificate");
      }
      return {};
    case v1::Command::kPing:
    case v1::Command::kRunHealthChecks:
    case v1::Command::kSetTelemetryIntervals:
    case v1::Command::kRotateDeviceKey:
      return {};
  }
  return {};
}

Result<std::string> CommandExecutor::dispatch(const v1::Command& command) {
  switch (command.action_case()) {
    case v1::Command::kPing:
      return handlers_.ping(command.ping());
    case v1::Command::kRunHealthChecks:
      return handlers_.run_health_checks(command.run_health_checks());
    case v1::Command::kSetTelemetryIntervals:
      return handlers_.set_telemetry_intervals(command.set_telemetry_intervals());
    case v1::Command::kReplacePolicy:
      return handlers_.replace_policy(command.replace_policy());
    case v1::Command::kUsbAuthorization:
      return handlers_.usb_authorization(command.usb_authorization());
    case v1::Command::kRotateDeviceKey:
      return handlers_.rotate_device_key(command.rotate_device_key());
    case v1::Command::kFetchAuditRange:
      return handlers_.fetch_audit_range(command.fetch_audit_range());
    case v1::Command::kInstallCertificate:
      return handlers_.install_certificate(command.install_certificate());
    case v1::Command::ACTION_NOT_SET:
      break;
  }
  return fail_msg(Errc::invalid_argument, "no action");
}

CommandExecutor::Run CommandExecutor::run(const v1::Command& command) {
  Run run;
  // Checked again: the caller may not have, and nothing runs unchecked.
  if (auto ok = check(command); !ok) {
    run.outcome.message = "not run: " + ok.error().message();
    return run;
  }
  Result<std::string> out = fail_msg(Errc::internal, "no result");
  try {
    out = dispatch(command);
  } catch (const std::exception& e) {
    out = fail_msg(Errc::internal, std::string("the handler threw: ") + e.what());
  } catch (...) {
    out = fail_msg(Errc::internal, "the handler threw");
  }
  if (!out) {
    run.outcome.message = out.error().message();
    return run;
  }
  run.outcome.ok = true;
  run.outcome.output = std::move(*out);
  if (command.has_replace_policy()) run.policy_version = command.replace_policy().version();
  return run;
}

}  // namespace portier::commands
