#include "daemon/daemon.h"

#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "agent/audit_log.h"
#include "agent/check_source.h"
#include "agent/feature_registry.h"
#include "agent/supervisor.h"
#include "common/audit_events.h"
#include "daemon/daemon_control.h"
#include "daemon/policy_watch.h"
#include "drivers/driver_registry.h"
#include "gateway/device_hub.h"
#include "gateway/gateway_service.h"
#include "gateway/unix_listener.h"

namespace portier::daemon {

using namespace portier::gateway;  // the composition root wires the gateway
namespace {

// gRPC server threads: every open stream holds one, every running call one.
constexpr int kMaxServerThreads = 512;

// The features' verdict on the terminal's health goes to the hub's gate.
class HubHealthGate final : public agent::TerminalHealth {
 public:
  explicit HubHealthGate(DeviceHub& hub) : hub_(hub) {}
  void set_terminal_health(policy::Health state, std::vector<std::string> reasons) override {
    hub_.set_external_health(state, std::move(reasons));
  }
  void set_component_health(const std::string& component, policy::Health state,
                            std::string reason) override {
    hub_.set_component_health(component, state, std::move(reason));
  }

 private:
  DeviceHub& hub_;
};

void add_check(v1::Health* h, const agent::CheckStatus& c) {
  auto* x = h->add_checks();
  x->set_id(c.id);
  x->set_status(c.status);
  x->set_severity(c.severity);
  x->set_reason(c.reason);
  auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(c.last_run.time_since_epoch()).count();
  x->mutable_last_run()->set_seconds(ns / 1000000000);
  x->mutable_last_run()->set_nanos(static_cast<int>(ns % 1000000000));
  x->set_runs(c.runs);
  for (auto& [k, v] : c.values) (*x->mutable_values())[k] = v;
}

}  // namespace

int run_daemon(const DaemonConfig& config, const agent::FeatureRegistry& features) {
  auto t0 = std::chrono::steady_clock::now();
  set_log_level(config.log_level);

  // Signals are taken through a signalfd; block them before any thread starts.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

  if (::mkdir(config.state_dir.c_str(), 0750) != 0 && errno != EEXIST) {
    log_error("state_dir " + config.state_dir + ": " + std::strerror(errno));
    return 1;
  }
  // The socket first: a second portierd pointed at a live one's socket
  // stops here, before it touches the live one's audit log.
  ListenerOptions lo;
  lo.path = config.socket;
  lo.mode = config.socket_mode;
  lo.group = config.socket_group;
  const auto& lim = config.limits;
  lo.limits = {lim.connections_per_app, lim.connections_declared,
               lim.connections_per_undeclared_uid, lim.connections_undeclared};
  const auto& idc = config.identity;
  lo.resolver.threads = idc.resolver_threads;
  lo.resolver.per_uid = idc.resolving_per_uid;
  lo.resolver.waiting_per_uid = idc.waiting_per_uid;
  lo.resolver.resolve.max_exe_bytes = idc.max_exe_bytes;
  lo.resolver.resolve.hash_timeout = std::chrono::milliseconds(idc.hash_timeout_ms);
  lo.resolver.resolve.use_so_peerpidfd = idc.peer_pidfd;
  auto listener = UnixListener::bind(lo);
  if (!listener) {
    log_error(listener.error().message());
    return 1;
  }
  agent::AuditLogOptions audit_options;
  audit_options.max_bytes = config.audit_max_bytes;
  audit_options.keep_files = config.audit_keep_files;
  auto audit = agent::AuditLog::open(config.audit_log, audit_options);
  if (!audit) {
    log_error(audit.error().message());
    return 1;
  }
  // Watched before it is read and long before ready: an edit made right
  // after the start (or during it) is never missed.
  auto pw = watch_policy(config.policy);
  PolicyStore policy(config.policy);
  if (auto r = policy.reload(); !r) {
    log_error("policy: " + r.error().message());
    return 1;
  }
  (*audit)->record(audit::policy_loaded(config.policy, "generation 1 at start"));

  HubOptions hub_options;
  hub_options.subscriber_queue = config.subscriber_queue;
  hub_options.max_lease_seconds = config.max_lease_seconds;
  hub_options.audit_failure_health = config.audit_failure_health == "compromised"
                                         ? policy::Health::compromised
                                         : policy::Health::degraded;
  DeviceHub hub(policy, **audit, hub_options);
  // An unwritable audit trail is a health state (operations that must be
  // audited are refused meanwhile); the daemon keeps serving and recovers
  // when the trail does. Both changes are recorded (the failure reaches the
  // file once it can be written again).
  (*audit)->on_state([&hub, &audit](const std::string& failure) {
    if (failure.empty()) {
      log_info("audit trail writable again");
      (*audit)->record(audit::audit_recovered());
    } else {
      log_error("audit trail cannot be written: " + failure +
                "; operations that must be audited are refused");
      (*audit)->record(audit::audit_failed(failure));
    }
    hub.audit_state_changed();
  });
  // The hub goes before the audit log: stop telling it first.
  struct ForgetAuditState {
    agent::AuditLog* log;
    ~ForgetAuditState() { log->on_state(nullptr); }
  } forget_audit_state{audit->get()};
  {
    std::vector<HealthRefusal> refusals;
    for (auto& r : config.refuse_when_compromised) {
      refusals.push_back({*policy::parse_op(r.op), r.device_class});
    }
    hub.set_compromised_refusals(std::move(refusals));
  }
  std::vector<std::unique_ptr<drivers::Driver>> drivers;
  for (auto& spec : config.drivers) {
    if (auto d = builtin_drivers().build(spec)) drivers.push_back(std::move(d));
  }
  for (auto& d : drivers) {
    if (auto r = hub.start_driver(*d); !r) {
      // One failing driver is reported and the others keep serving.
      log_error("driver " + std::string(d->name()) + ": " + r.error().message());
    }
  }
  // Data-collection peripherals are checked before the platform reports ready.
  std::vector<drivers::SelfTestResult> self_tests;
  for (auto& d : drivers) {
    auto results = d->self_test();
    hub.record_self_tests(results);
    self_tests.insert(self_tests.end(), results.begin(), results.end());
  }
  // Agent features run under the supervisor: one that fails is reported in
  // health and the audit trail and restarted with backoff; the daemon keeps
  // serving. The first round runs now, so the features are up before ready.
  HubHealthGate health_gate(hub);
  HubDaemonControl control(hub, policy, **audit, config.audit_log, config.audit_keep_files);
  agent::FeatureContext feature_context{audit->get(), config.state_dir, &health_gate, {}};
  feature_context.control = &control;
  for (auto& t : self_tests) {
    feature_context.peripherals.push_back({t.device_id, t.passed(), t.detail});
  }
  feature_context.gateway = &hub;
  agent::Supervisor supervisor(feature_context);
  supervisor.on_health([&hub](const std::string& feature, const std::string& failure) {
    hub.set_component_health("feature " + feature,
                             failure.empty() ? policy::Health::ok : policy::Health::degraded,
                             failure);
  });
  // Features that run checks offer them to the health report.
  std::vector<agent::CheckSource*> check_sources;
  for (auto& spec : config.features) {
    auto f = features.build(spec);
    if (!f) continue;  // configured off
    if (auto* s = dynamic_cast<agent::CheckSource*>(f.get())) check_sources.push_back(s);
    supervisor.add(std::move(f));
  }
  control.set_health_run([check_sources] {
    for (auto* s : check_sources) s->run_checks_now();
  });
  supervisor.tick();
  supervisor.run();

  UnixListener* lp = listener->get();
  GatewayService service(
      hub, policy, **audit, [lp](const std::string& peer) { return lp->find(peer); },
      [lp] { return static_cast<std::uint32_t>(lp->count()); }, config.subscriber_queue,
      StreamLimits{16, lim.streams_per_app, lim.streams_declared, lim.streams_per_undeclared_uid,
                   lim.streams_undeclared});
  if (!check_sources.empty()) {
    service.set_health_run([check_sources] {
      for (auto* s : check_sources) s->run_checks_now();
    });
    service.set_health_extra([check_sources](v1::Health* h) {
      for (auto* s : check_sources) {
        std::vector<agent::CheckStatus> checks;
        if (!s->check_statuses(checks)) continue;
        for (auto& c : checks) add_check(h, c);
      }
    });
  }
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  // Room for an extended-length APDU (65,544 bytes) and its framing.
  builder.SetMaxReceiveMessageSize(128 * 1024);
  // No BDP probing: on a local socket it only costs a PING (a write and a
  // read on each side) for every few event messages.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Sync server: one completion queue; threads come and go with the calls
  // (each stream holds one), bounded so that a flood of calls is refused
  // (RESOURCE_EXHAUSTED) instead of exhausting the terminal.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  grpc::ResourceQuota quota("portierd");
  quota.SetMaxThreads(kMaxServerThreads);
  builder.SetResourceQuota(quota);
  auto server = builder.BuildAndStart();
  if (!server) {
    log_error("gRPC server failed to start");
    return 1;
  }
  hub.set_sever([lp](std::uint64_t id) { lp->sever(id); });
  agent::AuditLog* audit_log = audit->get();
  lp->start(
      server.get(), [&hub](const std::shared_ptr<Connection>& c) { hub.connection_closed(c); },
      [&policy](const PeerIdentity& id) -> std::string {
        auto snap = policy.current();
        return snap.policy ? snap.policy->app_name(id.caller) : "";
      },
      [audit_log](const ucred& cred, AuditEvent event, const std::string& reason, bool) {
        policy::Caller who;
        who.uid = cred.uid;
        who.gid = cred.gid;
        who.pid = cred.pid;
        audit_log->record(event == AuditEvent::identity_refused
                              ? audit::identity_refused(&who, reason)
                              : audit::connection_refused(&who, reason));
      });

  auto ready_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  sd_notify(0, "READY=1\nSTATUS=serving");
  // What start-up freed (configs parsed, schemas, certificates read) goes
  // back to the system: an idle terminal holds only what it uses.
  malloc_trim(0);
  log_info("ready in " + std::to_string(ready_ms) + " ms; socket " + config.socket + "; policy " +
           config.policy);

  std::uint64_t wd_usec = 0;
  int timeout_ms = -1;
  if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
    timeout_ms = static_cast<int>(wd_usec / 2000);
  }
  for (bool running = true; running;) {
    pollfd fds[2] = {{sfd, POLLIN, 0}, {pw.fd, POLLIN, 0}};
    int n = poll(fds, pw.fd >= 0 ? 2 : 1, timeout_ms);
    if (timeout_ms > 0) sd_notify(0, "WATCHDOG=1");
    if (n <= 0) continue;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
          (void)reload_policy(policy, hub, **audit, "SIGHUP");
        } else {
          log_info(std::string("stopping on ") + strsignal(static_cast<int>(si.ssi_signo)));
          running = false;
        }
      }
    }
    if (pw.fd >= 0 && (fds[1].revents & POLLIN) && policy_touched(pw)) {
      (void)reload_policy(policy, hub, **audit, "file changed");
    }
  }

  sd_notify(0, "STOPPING=1");
  supervisor.stop();
  auto t_stop = std::chrono::steady_clock::now();
  auto phase = [&t_stop](const char* what) {
    log_debug(std::string(what) + " after " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - t_stop)
                                 .count()) +
              " ms");
  };
  hub.set_sever(nullptr);  // the listener goes away before the hub
  lp->stop();
  phase("listener stopped");
  hub.end_all_streams(fail_msg(Errc::unavailable, "portierd is stopping").error());
  service.end_streams(grpc::Status(grpc::StatusCode::UNAVAILABLE, "portierd is stopping"));
  // Streams ended above; whatever is still running gets a short grace, then
  // is cancelled. Shutdown returns once every handler has returned (device
  // actions end within their own timeouts), so no action outlives it.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  // Leases end now (their cards reset) while the drivers still run; a
  // device a driver drops while stopping starts no reset.
  hub.end_leases_and_drain("portierd is stopping");
  phase("server shut down");
  for (auto& d : drivers) d->stop();
  phase("drivers stopped");
  (*audit)->flush();
  if (pw.fd >= 0) close(pw.fd);
  close(sfd);
  log_info("stopped");
  return 0;
}

}  // namespace portier::daemon
