// The policy watch: the policy file's directory under inotify (editors and
// config managers replace files by rename), and the one reload path that a
// file change, SIGHUP and (later) a signed remote policy push all take: a
// policy that fails to load is rejected, audited, and the old one stays.
#pragma once

#include <string>

#include "common/audit_sink.h"

namespace portier::gateway {
class DeviceHub;
class PolicyStore;
}  // namespace portier::gateway

namespace portier::daemon {

struct PolicyWatch {
  int fd = -1;  // inotify, -1 when it could not be set up (SIGHUP still works)
  std::string dir, name;
};

PolicyWatch watch_policy(const std::string& path);
// Drains the watch's events; true when one of them is the policy file.
bool policy_touched(const PolicyWatch& w);
// Reloads `store`; on success the hub re-decides open streams and leases.
// `why` says what asked ("SIGHUP", "file changed").
// The error when the new policy was rejected (the old one stays).
Result<void> reload_policy(gateway::PolicyStore& store, gateway::DeviceHub& hub, AuditSink& audit,
                           const char* why);

}  // namespace portier::daemon
