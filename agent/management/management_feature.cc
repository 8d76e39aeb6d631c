#include "agent/management/management_feature.h"

#include <malloc.h>
#include <sys/stat.h>

#include <cerrno>

#include "agent/envelope/offline_notice.h"
#include "agent/identity/device_key.h"
#include "agent/identity/hardware_serial.h"
#include "agent/identity/issued_certificate.h"
#include "agent/identity/key_store.h"
#include "agent/management/token_rotation_output.h"
#include "common/audit_events.h"
#include "common/crypto/x509.h"
#include "common/file_read.h"
#include "common/log.h"
#include "common/version.h"

namespace portier::management {
namespace {

constexpr const char* kAuditCursor = "audit_cursor";
constexpr const char* kEnrolmentComponent = "management enrolment";
constexpr const char* kRotationComponent = "management key rotation";
constexpr std::chrono::seconds kFirstRetry{1};
// The outbox's connection is closed after this long without a call (records
// flow in bursts: a put, its send and the fleet's acknowledgement take well
// under a second; the next burst comes with the next interval, 60 s at
// least by default). Its page cache, schema and WAL index then go back to
// the system (malloc_trim): about 0.1 MiB of an idle terminal's RSS
// (bench/README.md). Checked as often.
constexpr std::chrono::seconds kOutboxIdle{2};

Result<void> make_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail_errno(Errc::io, dir, "cannot create", errno);
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return fail_errno(Errc::io, dir, "cannot stat", errno);
  if (!S_ISDIR(st.st_mode)) return fail(Errc::failed_precondition, dir, "state", "not a directory");
  if (st.st_uid != ::geteuid() || (st.st_mode & 0077) != 0) {
    return fail(Errc::permission_denied, dir, "state",
                "must be owned by portierd's user and closed to group and others (0700)");
  }
  return {};
}

// The certificates of the command_trust_anchors files.
Result<std::vector<crypto::Certificate>> read_trust_anchors(const std::vector<std::string>& paths) {
  std::vector<crypto::Certificate> out;
  for (auto& path : paths) {
    auto pem = read_small_file(path, ReadOptions{.max = 1u << 20});
    if (!pem) return std::unexpected(pem.error());
    auto certs = crypto::Certificate::all_from_pem(*pem);
    if (!certs) return std::unexpected(certs.error().with_context(path));
    if (certs->empty()) {
      return fail(Errc::invalid_argument, path, "command_trust_anchors", "holds no certificate");
    }
    out.insert(out.end(), certs->begin(), certs->end());
  }
  return out;
}

}  // namespace

ManagementFeature::ManagementFeature(ManagementConfig config, LinkFactory links)
    : config_(std::move(config)), links_(std::move(links)) {}

ManagementFeature::~ManagementFeature() { stop(); }

std::string ManagementFeature::terminal_id() const { return terminal_id_; }

UplinkStats ManagementFeature::uplink_stats() const {
  std::lock_guard lock(lifecycle_mu_);
  return uplink_ ? uplink_->stats() : UplinkStats{};
}

SenderStats ManagementFeature::sender_stats() const {
  std::lock_guard lock(sender_mu_);
  return sender_ ? sender_->stats() : SenderStats{};
}

std::string ManagementFeature::enrolment_state() const {
  std::lock_guard lock(id_mu_);
  return enrolment_state_;
}

std::string ManagementFeature::rotation_state() const {
  std::lock_guard lock(id_mu_);
  return rotation_state_;
}

void ManagementFeature::on_uplink_state(const std::string& failure) {
  if (context_.health) {
    context_.health->set_component_health(
        "management outbox", failure.empty() ? policy::Health::ok : policy::Health::degraded,
        failure.empty() ? "" : "management outbox: " + failure + " (records kept in memory)");
  }
  if (context_.audit) {
    context_.audit->record(failure.empty()
                               ? audit::feature_recovered("management outbox", 1)
                               : audit::feature_failed("management outbox: " + failure));
  }
}

Result<void> ManagementFeature::start(const agent::FeatureContext& context) {
  context_ = context;
  dir_ = context.state_dir + "/management";
  PORTIER_TRY(make_private_dir(dir_));
  auto id = identity::load_or_create_terminal_id(dir_ + "/terminal_id");
  if (!id) return std::unexpected(id.error());
  terminal_id_ = *id;
  const bool enrol = !config_.enrolment_server.empty();
  rotation_file_ = dir_ + "/rotation.pending";
  if (!enrol) {
    // Only enrolment finishes a rotation: without it the old key would sign
    // past a cutover the fleet may have recorded (and refuses as a retired
    // key's). The record is not taken as "none".
    auto rec = identity::load_pending_rotation(rotation_file_);
    if (!rec || *rec) {
      return fail(
          Errc::failed_precondition, rotation_file_, "management: key rotation",
          (rec ? "a key rotation to be in use from sequence " + std::to_string((*rec)->cutover) +
                     " is pending"
               : "a pending key rotation's record does not read (" + rec.error().message() + ")") +
              ", and only enrolment can finish it: set [management] enrolment_server "
              "again (the fleet answers with what it recorded), or, if the fleet "
              "certainly recorded no rotation, remove this file to go on with the "
              "old key");
    }
  }
  // Without enrolment the certificate is provisioned by hand in cert_file
  // and the identity's own store stays unused. With the device key in a
  // token, cert_file and tls_key_file are the link's TLS identity and the
  // enrolled device certificate has a file of its own.
  if (config_.pkcs11()) {
    key_file_.clear();
    cert_file_ = dir_ + "/device.crt";
    link_cert_file_ = config_.cert_file;
  } else {
    key_file_ = config_.key_file.empty() ? dir_ + "/device.key" : config_.key_file;
    cert_file_ = config_.cert_file.empty() ? dir_ + "/device.crt" : config_.cert_file;
    link_cert_file_ = cert_file_;
  }
  identity::IdentityInfo info{terminal_id_, "", {}};
  if (enrol) {
    auto serial = identity::hardware_serial(config_.serial);
    if (!serial) return std::unexpected(serial.error().with_context("management: enrolment"));
    info.serial = *serial;
    auto pem = read_small_file(config_.ca_file, ReadOptions{.max = 1u << 20});
    if (!pem) return std::unexpected(pem.error().with_context("management: ca_file"));
    auto anchors = crypto::Certificate::all_from_pem(*pem);
    if (!anchors || anchors->empty()) {
      return fail(Errc::invalid_argument, config_.ca_file, "management: ca_file",
                  "holds no certificate: the fleet's CA is needed to check what it issues");
    }
    info.fleet_ca = std::move(*anchors);
  }
  std::unique_ptr<identity::KeyStore> keys;
  if (config_.pkcs11()) {
    // A rotation keeps the old key in the token until the signing parts
    // have started again with the new one (run_identity destroys it).
    keys = std::make_unique<identity::Pkcs11KeyStore>(
        identity::Pkcs11Options{config_.pkcs11_module, config_.pkcs11_token,
                                config_.pkcs11_pin_file, config_.pkcs11_key_label,
                                config_.key_type},
        true);
  } else {
    keys = std::make_unique<identity::FileKeyStore>(key_file_, config_.key_type);
  }
  auto ident = identity::DeviceIdentity::open(
      std::move(info), std::move(keys),
      identity::CertificateStore(enrol ? cert_file_ : dir_ + "/device.crt"));
  if (!ident) {
    return std::unexpected(ident.error().with_context(
        config_.pkcs11()
            ? "management: the device key in PKCS#11 token \"" + config_.pkcs11_token + "\""
            : "management: the device key"));
  }
  identity_ = std::move(*ident);
  if (enrol) {
    identity::EnrolmentOptions eo;
    eo.server = config_.enrolment_server;
    eo.fleet_ca_file = config_.ca_file;
    eo.server_name = config_.enrolment_server_name;
    eo.secret_file = config_.enrolment_secret_file;
    eo.renew_at_percent = config_.renew_at_percent;
    // stop() waits for a call in flight: a fleet that does not answer must
    // not hold the daemon's shutdown for long.
    eo.timeout = std::chrono::milliseconds(config_.enrolment_timeout_ms);
    enrolment_ = std::make_unique<identity::EnrolmentClient>(std::move(eo));
    // A new key (a rotation, by either command): the signing parts start
    // again with it, on the identity thread.
    identity_->on_key_changed([this] { request_restart(true); });
    // Before the old key is destroyed: the audit checkpoints go over to the
    // new key (audit_checkpointer.h), so that no crash leaves a last
    // checkpoint only the destroyed key verifies. The command thread calls
    // this (a rotation is a command), while the core is up.
    identity_->before_key_change([this](std::shared_ptr<crypto::Signer> next) -> Result<void> {
      if (!checkpointer_) return {};
      auto kid = envelope::key_id(next->public_key());
      if (!kid) return std::unexpected(kid.error());
      const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      return checkpointer_->hand_over(std::move(next), *kid, now_ms);
    });
  }
  if (enrol) {
    // A rotation whose answer was not known at the last stop: held at its
    // cutover from the start (start_core), asked again (run_identity).
    auto rec = identity::load_pending_rotation(rotation_file_);
    if (!rec) return std::unexpected(rec.error().with_context("management: key rotation"));
    if (*rec) {
      auto key = crypto::PublicKey::from_pem((*rec)->pending_key_pem);
      if (!key) return std::unexpected(key.error().with_context(rotation_file_));
      const auto pending = identity_->pending_key();
      if (identity::same_key(identity_->signer()->public_key(), *key)) {
        // Its certificate was installed before the stop: the new key is
        // current and signs from the cutover on.
        log_info("management: the key rotation to be in use from sequence " +
                 std::to_string((*rec)->cutover) + " was finished before the last stop");
        PORTIER_TRY(identity::remove_pending_rotation(rotation_file_));
      } else {
        std::lock_guard lock(id_mu_);
        rotation_ = **rec;
        rotation_due_ = std::chrono::steady_clock::now();
        rotation_stuck_ = !pending || !identity::same_key(*pending, *key);
      }
    }
  }
  {
    std::lock_guard lock(lifecycle_mu_);
    PORTIER_TRY(start_core());
    if (!enrol) {
      if (auto ok = start_link(); !ok) {
        stop_core();
        return ok;
      }
    }
  }
  if (enrol) {
    {
      std::lock_guard lock(id_mu_);
      id_stopping_ = false;
    }
    if (!identity_->certificate()) set_enrolment_state("not enrolled yet", false);
    std::optional<identity::PendingRotation> pending;
    bool stuck = false;
    {
      std::lock_guard lock(id_mu_);
      pending = rotation_;
      stuck = rotation_stuck_;
    }
    if (pending) {
      set_rotation_state(
          stuck ? "key rotation to be in use from sequence " + std::to_string(pending->cutover) +
                      " cannot be finished: its pending key is gone (the fleet may have "
                      "recorded it); uplink held at sequence " +
                      std::to_string(pending->cutover) + "; remove " + rotation_file_ +
                      " to go on with the old key"
                : "key rotation pending since the last start: the fleet's answer is not "
                  "known; uplink held at sequence " +
                      std::to_string(pending->cutover) + "; asking again",
          true);
    }
    identity_thread_ = std::thread([this] { run_identity(); });
  }
  log_info("management: terminal " + terminal_id_ + ", session " + std::to_string(session_epoch_) +
           ", " + config_.link + " link to " + config_.server +
           (enrol ? ", enrolment at " + config_.enrolment_server : std::string()));
  return {};
}

Result<void> ManagementFeature::start_core() {
  signer_ = identity_->signer();
  auto kid = envelope::key_id(signer_->public_key());
  if (!kid) return std::unexpected(kid.error());
  auto box = outbox::Outbox::open({dir_ + "/outbox.db", config_.outbox_max_bytes,
                                   std::chrono::hours(24) * config_.outbox_max_age_days});
  if (!box) return std::unexpected(box.error());
  outbox_ = std::move(*box);
  auto state = outbox_->chain_state();
  if (!state) {
    outbox_.reset();
    return std::unexpected(state.error());
  }
  // A new session: the epoch is committed with the birth, the first
  // envelope of this start.
  ++state->session_epoch;
  session_epoch_ = state->session_epoch;
  UplinkOptions uo;
  uo.signing = config_.signing;
  uplink_ = std::make_unique<Uplink>(
      *outbox_, envelope::EnvelopeSealer(terminal_id_, signer_->type(), *state), *signer_, *kid,
      uo);
  uplink_->on_state([this](const std::string& f) { on_uplink_state(f); });
  {
    // A rotation not settled: the old key signs nothing from its cutover.
    std::optional<std::uint64_t> cutover;
    {
      std::lock_guard lock(id_mu_);
      if (rotation_) cutover = rotation_->cutover;
    }
    if (cutover) {
      auto held = uplink_->hold(std::chrono::milliseconds(0));
      if (held && held->next_sequence != *cutover) {
        log_error("management: the outbox's chain goes on at sequence " +
                  std::to_string(held->next_sequence) + ", the pending key rotation at " +
                  std::to_string(*cutover) + ": held there all the same");
      }
    }
  }
  uplink_->on_stored([this] {
    std::lock_guard lock(sender_mu_);
    if (sender_) sender_->wake();
  });

  BirthInfo birth;
  birth.portierd_version = kVersion;
  birth.key_algorithm = std::string(crypto::name(signer_->type()));
  if (auto pem = signer_->public_key().to_pem()) birth.public_key_pem = *pem;
  TelemetryIntervals ti;
  ti.health = std::chrono::seconds(config_.health_interval_s);
  ti.decisions = std::chrono::seconds(config_.decisions_interval_s);
  ti.checkpoint = std::chrono::seconds(config_.checkpoint_interval_s);
  checkpointer_ = std::make_unique<AuditCheckpointer>(
      dir_ + "/audit-checkpoints.jsonl", terminal_id_, state->session_epoch, *signer_, *kid);
  const auto& context = context_;
  if (context.audit) {
    // The trail must still hold what this terminal signed before: a trail
    // cut short or changed since is reported, and the daemon goes on. A
    // rotation cut short after its checkpoint handover left the last
    // checkpoint to its pending key.
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    if (auto ok = checkpointer_->check_trail(context.audit->tail(100000), identity_->pending_key(),
                                             now_ms);
        !ok) {
      log_error("management: " + ok.error().message());
      context.audit->record(audit::audit_tampered(ok.error().message()));
      if (context.health) {
        context.health->set_component_health("audit trail", policy::Health::degraded,
                                             ok.error().message());
      }
    }
  }
  auto fail_core = [this](const Error& e) {
    stop_core();
    return std::unexpected(e);
  };
  auto cursor = outbox_->counter(kAuditCursor);
  if (!cursor) return fail_core(cursor.error());
  sources_ = std::make_unique<TelemetrySources>(
      context.gateway, context.audit, *uplink_, birth, ti, *cursor,
      [this](std::uint64_t c) {
        if (auto ok = outbox_->set_counter(kAuditCursor, c); !ok) {
          log_warning("management: " + ok.error().message());
        }
      },
      checkpointer_.get());
  sources_->set_housekeeping(
      [this] {
        if (outbox_->release_idle(kOutboxIdle)) malloc_trim(0);
      },
      kOutboxIdle);

  // The fleet's commands: verified against the configured trust anchors.
  commands::VerifierOptions vo;
  vo.terminal_id = terminal_id_;
  // The fleet's keys (commands and acknowledgements) chain to these.
  auto anchors = read_trust_anchors(config_.command_trust_anchors);
  if (!anchors) return fail_core(anchors.error());
  trust_anchors_ = *anchors;
  vo.trust_anchors = *anchors;
  if (!context.audit) {
    return fail_core(
        Error{Errc::failed_precondition, "management", "commands", "need the audit trail"});
  }
  auto cmds = FleetCommands::create(dir_ + "/commands.db", std::move(vo), *context.audit,
                                    context.control, *sources_, *uplink_, config_.link);
  if (!cmds) return fail_core(cmds.error());
  (*cmds)->set_identity_actions(
      [this] { return rotate_key(); },
      [this](const v1::InstallCertificate& c) { return install_certificate(c); });

  uplink_->start();
  sources_->start();
  commands_ = std::move(*cmds);
  commands_->start();
  return {};
}

Result<void> ManagementFeature::start_link() {
  auto kid = envelope::key_id(signer_->public_key());
  if (!kid) return std::unexpected(kid.error());
  auto offline = envelope::make_offline(terminal_id_, session_epoch_, *signer_, *kid);
  if (!offline) return std::unexpected(offline.error());
  // The link reads its files when it is made: a new certificate or key
  // means a new link.
  ManagementConfig lc = config_;
  lc.cert_file = link_cert_file_;
  auto link = links_(lc, LinkContext{terminal_id_, offline->SerializeAsString(), key_file_});
  if (!link) return std::unexpected(link.error());
  auto sender = std::make_unique<OutboxSender>(
      *outbox_, **link,
      // The newest verified acknowledgement's time outlives a restart: an
      // older one replayed afterwards is refused unchecked.
      link::AckVerifierOptions{.terminal_id = terminal_id_,
                               .trust_anchors = trust_anchors_,
                               .newest_file = dir_ + "/ack-newest"},
      [this](std::string bytes) {
        if (commands_) commands_->receive(std::move(bytes));
      },
      // Each connection starts with its oldest run alone until the fleet
      // answers: a broker with no fleet subscribed yet drops it, and a
      // newer run must not reach the fleet first.
      SenderOptions{.window = config_.window, .probe_first = true});
  {
    std::lock_guard lock(sender_mu_);
    link_ = std::move(*link);
    sender_ = std::move(sender);
  }
  sender_->start();
  if (auto ok = link_->start(*sender_); !ok) {
    stop_link();
    return ok;
  }
  return {};
}

void ManagementFeature::stop_link() {
  // The sender first: its thread is the only caller of link_->send(), which
  // must not run while the link stops (the MQTT link's client goes away
  // under it: a crash seen when a rotation restarted the link under load).
  // The link's callbacks into a stopped sender are harmless; none come after
  // link_->stop().
  if (sender_) sender_->stop();
  if (link_) link_->stop();
  std::lock_guard lock(sender_mu_);
  sender_.reset();
  link_.reset();
}

void ManagementFeature::stop_core() {
  if (commands_) commands_->stop();
  if (sources_) sources_->stop();
  if (uplink_) uplink_->stop();
  // The link goes after the uplink, so that what the uplink committed last
  // (the final checkpoint) may still leave.
  stop_link();
  commands_.reset();
  sources_.reset();
  checkpointer_.reset();
  uplink_.reset();
  outbox_.reset();
  signer_.reset();
}

void ManagementFeature::request_restart(bool core) {
  {
    std::lock_guard lock(id_mu_);
    (core ? restart_core_ : restart_link_) = true;
  }
  id_cv_.notify_all();
}

void ManagementFeature::set_enrolment_state(const std::string& why, bool refused) {
  {
    std::lock_guard lock(id_mu_);
    if (why == enrolment_state_) return;
    enrolment_state_ = why;
  }
  if (why.empty()) {
    log_info("management: enrolled; the link comes up");
  } else {
    log_warning("management: " + why);
  }
  if (context_.health) {
    context_.health->set_component_health(
        kEnrolmentComponent, why.empty() ? policy::Health::ok : policy::Health::degraded,
        why.empty() ? "" : "management link down: " + why);
  }
  if (refused && context_.audit)
    context_.audit->record(audit::feature_failed("management: " + why));
}

void ManagementFeature::run_identity() {
  auto delay = std::chrono::seconds(kFirstRetry);
  const auto max_delay = std::chrono::seconds(config_.enrolment_retry_max_s);
  bool core_up = true;  // start() brought it up
  bool renewal_failing = false;
  std::unique_lock lock(id_mu_);
  while (!id_stopping_) {
    const bool core = std::exchange(restart_core_, false);
    const bool link = std::exchange(restart_link_, false);
    lock.unlock();
    Result<void> step;
    if (core || link || !core_up) {
      std::lock_guard lc(lifecycle_mu_);
      if (core || !core_up) {
        // A new key: everything that signs starts again with it.
        if (core_up) stop_core();
        step = start_core();
        core_up = step.has_value();
        if (!step) log_error("management: cannot start again: " + step.error().message());
        // Nothing signs with a key a rotation retired any more (its last
        // checkpoint is out): it goes now.
        if (auto gone = identity_->destroy_retired_key(); !gone) {
          log_error("management: " + gone.error().message());
        }
      } else {
        stop_link();
      }
    }
    // No certificate, or one that expired while the terminal was off (it
    // can renew nothing over TLS any more): enrol the same key again.
    // A rotation pending (its key at hand) asks with the pending key first
    // (ask_fleet): a fleet that recorded it refuses the old key's Enroll.
    const auto installed = identity_->certificate();
    bool asking = false;
    {
      std::lock_guard rl(id_mu_);
      asking = rotation_ && !rotation_stuck_;
    }
    if (step && !(installed && asking) &&
        (!installed || installed->cert.not_after() <= std::chrono::system_clock::now())) {
      if (installed) {
        std::lock_guard lc(lifecycle_mu_);
        stop_link();
      }
      step = enrolment_->enroll(*identity_);
      if (step) {
        set_enrolment_state("", false);
      } else {
        // The fleet's refusal (or its answer refused here) names the
        // server; anything else is this side's (the secret file, ...).
        const Error& e = step.error();
        const bool from_fleet = e.where.find(config_.enrolment_server) != std::string::npos;
        const bool refused =
            from_fleet && (e.code == Errc::permission_denied || e.code == Errc::invalid_argument ||
                           e.code == Errc::already_exists);
        set_enrolment_state((refused ? "enrolment refused: " : "not enrolled yet: ") + e.message(),
                            refused);
      }
    }
    bool link_up = false;
    {
      std::lock_guard sl(sender_mu_);
      link_up = link_ != nullptr;
    }
    if (step && !link_up) {
      std::lock_guard lc(lifecycle_mu_);
      step = start_link();
      if (!step) log_warning("management: the link cannot start: " + step.error().message());
    }
    // A rotation whose answer is not known: asked again when due (never
    // while the command thread asks); no renewal meanwhile (the old key's
    // certificate may already be the fleet's previous one).
    bool rotating = false;
    std::optional<identity::PendingRotation> ask;
    {
      std::lock_guard rl(id_mu_);
      rotating = rotation_.has_value();
      if (rotating && !rotation_busy_ && !rotation_stuck_ && core_up &&
          std::chrono::steady_clock::now() >= rotation_due_) {
        ask = rotation_;
      }
    }
    if (ask) {
      rotating = ask_rotation(*ask) == identity::RotationOutcome::unknown;
      if (!rotating) delay = kFirstRetry;
    }
    std::optional<std::chrono::system_clock::time_point> due;
    if (step && !rotating) {
      due = enrolment_->renewal_due(*identity_);
      if (due && std::chrono::system_clock::now() >= *due) {
        step = enrolment_->renew(*identity_);
        if (step) {
          log_info("management: certificate renewed; the link starts again with it");
          if (std::exchange(renewal_failing, false) && context_.health) {
            context_.health->set_component_health(kEnrolmentComponent, policy::Health::ok, "");
          }
          lock.lock();
          restart_link_ = true;
          delay = kFirstRetry;
          continue;
        }
        log_warning("management: renewal failed (the certificate in use stays): " +
                    step.error().message());
        renewal_failing = true;
        if (context_.health) {
          context_.health->set_component_health(
              kEnrolmentComponent, policy::Health::degraded,
              "certificate renewal failed: " + step.error().message());
        }
      }
    }
    lock.lock();
    if (rotating && rotation_) {
      auto woken = [this] { return id_stopping_ || restart_core_ || restart_link_; };
      if (rotation_stuck_) {
        id_cv_.wait(lock, woken);
      } else {
        id_cv_.wait_until(lock, rotation_due_, woken);
      }
      continue;
    }
    // A rotation the command thread left to this one wakes it too.
    auto rotation_left = [this] { return rotation_ && !rotation_busy_ && !rotation_stuck_; };
    if (step) {
      delay = kFirstRetry;
      auto woken = [&] {
        return id_stopping_ || restart_core_ || restart_link_ || rotation_left();
      };
      if (due) {
        id_cv_.wait_until(lock, *due, woken);
      } else {
        id_cv_.wait(lock, woken);
      }
    } else {
      id_cv_.wait_for(lock, delay,
                      [&] { return id_stopping_ || restart_core_ || rotation_left(); });
      delay = std::min(delay * 2, max_delay);
    }
  }
}

Result<std::string> ManagementFeature::rotate_key() {
  if (!enrolment_) {
    return fail_msg(Errc::failed_precondition,
                    "key rotation needs enrolment: set [management] enrolment_server");
  }
  auto before = envelope::key_id(identity_->signer()->public_key());
  if (!before) return std::unexpected(before.error());
  if (config_.pkcs11()) {
    // Renew over mutual TLS would need the token's key as a PEM file: the
    // new key is made in the token, its CSR goes back in this result, and
    // the fleet's certificate for it comes with InstallCertificate, which
    // makes it current and only then destroys the old key.
    auto csr = identity_->begin_rotation();
    if (!csr) return std::unexpected(csr.error());
    auto parsed = crypto::CertificateRequest::from_pem(*csr);
    if (!parsed) return std::unexpected(parsed.error().with_context("key rotation"));
    auto pending = parsed->public_key();
    if (!pending) return std::unexpected(pending.error().with_context("key rotation"));
    auto next = envelope::key_id(*pending);
    if (!next) return std::unexpected(next.error());
    log_info("management: key rotation: key " + *next + " made in PKCS#11 token \"" +
             config_.pkcs11_token + "\"; key " + *before +
             " signs until its certificate is installed");
    // The first line tells the fleet the new key is a token's (signed
    // through the chain): only then does it certify the CSR with no cutover.
    return token_rotation_output("key " + *next + " made in the PKCS#11 token; key " + *before +
                                     " stays in use until InstallCertificate brings a "
                                     "certificate for the new key (CSR below)",
                                 *csr);
  }
  {
    std::lock_guard lock(id_mu_);
    if (rotation_) {
      return fail_msg(Errc::failed_precondition,
                      "a key rotation is pending (to be in use from sequence " +
                          std::to_string(rotation_->cutover) + "): " + rotation_state_);
    }
  }
  // The cutover: the uplink stops at a committed run, and the next sequence
  // is the first the new key signs; the old key signs nothing from there
  // on (the fleet refuses it), so the uplink goes on with the new key, or
  // with the old one once the fleet said it recorded nothing.
  auto held = uplink_->hold(std::chrono::seconds(10));
  if (!held) return std::unexpected(held.error().with_context("key rotation"));
  const std::uint64_t cutover = held->next_sequence;
  // The pending key and the cutover are on disk before the fleet is asked:
  // whatever happens to its answer, or to this process, the old key never
  // signs the cutover (review finding M4).
  auto pending_pem = [&]() -> Result<std::string> {
    auto csr = identity_->begin_rotation();
    if (!csr) return std::unexpected(csr.error());
    auto parsed = crypto::CertificateRequest::from_pem(*csr);
    if (!parsed) return std::unexpected(parsed.error().with_context("key rotation"));
    auto pub = parsed->public_key();
    if (!pub) return std::unexpected(pub.error().with_context("key rotation"));
    return pub->to_pem();
  }();
  identity::PendingRotation record{cutover, pending_pem ? *pending_pem : std::string()};
  if (auto saved = pending_pem ? identity::save_pending_rotation(rotation_file_, record)
                               : Result<void>(std::unexpected(pending_pem.error()));
      !saved) {
    uplink_->release();
    return std::unexpected(
        saved.error().with_context("key rotation (the fleet was not asked, the key stays)"));
  }
  {
    std::lock_guard lock(id_mu_);
    rotation_ = record;
    rotation_busy_ = true;
    rotation_stuck_ = false;
    rotation_delay_ = kFirstRetry;
    rotation_attempts_ = 0;
  }
  log_info("management: key rotation: asking the fleet to certify the new key from sequence " +
           std::to_string(cutover) + " (recorded in " + rotation_file_ + ")");
  switch (ask_rotation(record)) {
    case identity::RotationOutcome::unknown: {
      std::optional<std::string> refusal;
      std::string state;
      {
        std::lock_guard lock(id_mu_);
        refusal = rotation_refused_;
        state = rotation_state_;
      }
      if (refusal) {
        return fail_msg(
            Errc::permission_denied,
            "key rotation refused by the fleet (nothing recorded): " + *refusal + "; " + state);
      }
      return "pending: the fleet did not answer; uplink held at sequence " +
             std::to_string(cutover) + "; retrying (key " + *before + " signs nothing from there)";
    }
    case identity::RotationOutcome::not_recorded:
      return fail_msg(
          Errc::permission_denied, "key rotation refused by the fleet (nothing recorded; key " +
                                       *before + " stays in use): " + [this] {
                                         std::lock_guard lock(id_mu_);
                                         return last_refusal_;
                                       }());
    case identity::RotationOutcome::rotated:
      break;
  }
  const auto now_signer = identity_->signer();
  auto after = envelope::key_id(now_signer->public_key());
  auto installed = identity_->certificate();
  std::string pem;
  if (installed) {
    if (auto p = installed->cert.to_pem()) pem = *p;
  }
  // The output: the new certificate (PEM), as the fleet issued it.
  return "device key rotated: key " + *before + " destroyed, key " +
         (after ? *after : std::string("?")) + " certified and in use from sequence " +
         std::to_string(cutover) + "\n" + pem;
}

identity::RotationOutcome ManagementFeature::ask_rotation(const identity::PendingRotation& r) {
  const std::string at = std::to_string(r.cutover);
  const auto max_delay =
      std::chrono::seconds(std::max<std::uint32_t>(1, config_.enrolment_retry_max_s));
  // The next attempt when this one settled nothing: the hold stays.
  // `asking`: the fleet is asked again (else only the record's removal).
  auto again = [&](const std::string& why_held, bool audit, bool asking) {
    bool first = false;
    std::chrono::seconds wait{};
    unsigned attempts = 0;
    {
      std::lock_guard lock(id_mu_);
      first = rotation_busy_;
      attempts = ++rotation_attempts_;
      rotation_busy_ = false;
      wait = rotation_delay_;
      rotation_due_ = std::chrono::steady_clock::now() + rotation_delay_;
      rotation_delay_ = std::min(rotation_delay_ * 2, max_delay);
    }
    id_cv_.notify_all();
    set_rotation_state(why_held + "; uplink held at sequence " + at + "; " +
                           (asking ? "asked " : "tried ") + std::to_string(attempts) + " times, " +
                           (asking ? "asking" : "trying") + " again in " +
                           std::to_string(wait.count()) + " s",
                       first || audit);
  };
  std::optional<std::string> refused;
  {
    std::lock_guard lock(id_mu_);
    refused = rotation_refused_;
  }
  // Asked again only for the recorded key: a pending key made anew would
  // be refused by a fleet that recorded the first one, and that refusal
  // would wrongly let the old key go on.
  auto recorded = crypto::PublicKey::from_pem(r.pending_key_pem);
  const auto pending = identity_->pending_key();
  if (!refused && (!recorded || !pending || !identity::same_key(*pending, *recorded))) {
    {
      std::lock_guard lock(id_mu_);
      rotation_busy_ = false;
      rotation_stuck_ = true;
    }
    set_rotation_state("key rotation to be in use from sequence " + at +
                           " cannot be finished: its pending key is gone; uplink held at "
                           "sequence " +
                           at + "; remove " + rotation_file_ + " to go on with the old key",
                       true);
    return identity::RotationOutcome::unknown;
  }
  // Refused already: its record could not be removed then, nothing to ask.
  auto a = refused ? identity::RotationAttempt{identity::RotationOutcome::not_recorded,
                                               Error{Errc::permission_denied, "key rotation",
                                                     "refused by the fleet", *refused}}
                   : ask_fleet(r.cutover);
  switch (a.outcome) {
    case identity::RotationOutcome::rotated: {
      const auto now_signer = identity_->signer();
      auto kid = envelope::key_id(now_signer->public_key());
      // The record goes first: a stop before the release finds the new key
      // current and the record gone (or, if this fails, the new key current
      // and the record its own: start() removes it).
      if (auto gone = identity::remove_pending_rotation(rotation_file_); !gone) {
        log_error("management: " + gone.error().message());
      }
      {
        std::lock_guard lock(id_mu_);
        rotation_.reset();
        rotation_busy_ = false;
      }
      if (kid) {
        uplink_->release(now_signer, *kid);
      } else {
        log_error("management: key rotation: " + kid.error().message());
        uplink_->release();  // cannot happen for a key that was just certified
      }
      if (a.error) log_warning("management: key rotation: " + a.error->message());
      log_info("management: device key rotated: " + (kid ? *kid : std::string("?")) +
               " in use from sequence " + at + ", the old key destroyed");
      set_rotation_state("", true);
      break;
    }
    case identity::RotationOutcome::not_recorded: {
      // The fleet recorded nothing: the record goes, then the pending key
      // (a stop between leaves a pending key without a record, which the
      // next rotation takes as its own), then the old key goes on.
      const std::string why = refused   ? *refused
                              : a.error ? a.error->message()
                                        : std::string("refused");
      if (auto gone = identity::remove_pending_rotation(rotation_file_); !gone) {
        // Released with the record left, the old key would sign past the
        // cutover and the next start, finding the record, would hold the
        // uplink at a cutover the chain has passed, for ever: the hold and
        // the pending key stay until the record is gone (the next attempt
        // removes it, the fleet not asked again: it recorded nothing).
        log_error("management: " + gone.error().message());
        {
          std::lock_guard lock(id_mu_);
          rotation_refused_ = why;
          last_refusal_ = why;
        }
        again("key rotation to be in use from sequence " + at +
                  " refused by the fleet (nothing recorded: " + why +
                  "), but its record cannot be removed (" + gone.error().message() +
                  "): the old key goes on only once it is",
              !refused, false);
        return identity::RotationOutcome::unknown;
      }
      if (auto dropped = identity_->abandon_rotation(); !dropped) {
        log_error("management: " + dropped.error().message());
      }
      {
        std::lock_guard lock(id_mu_);
        rotation_.reset();
        rotation_busy_ = false;
        rotation_refused_.reset();
        last_refusal_ = why;
      }
      uplink_->release();
      log_warning("management: key rotation refused by the fleet, nothing recorded: " + why +
                  "; the old key goes on at sequence " + at);
      if (context_.audit) {
        context_.audit->record(audit::feature_failed(
            "management: key rotation refused by the fleet (nothing recorded): " + why));
      }
      set_rotation_state("", false);
      break;
    }
    case identity::RotationOutcome::unknown: {
      const std::string why = a.error ? a.error->message() : std::string("no answer");
      again("key rotation pending: the fleet's answer is not known (" + why + ")", false, true);
      break;
    }
  }
  return a.outcome;
}

identity::RotationAttempt ManagementFeature::ask_fleet(std::uint64_t cutover) {
  using identity::RotationOutcome;
  const auto installed = identity_->certificate();
  if (installed && installed->cert.not_after() <= std::chrono::system_clock::now()) {
    // The old key's certificate expired during the hold: Renew needs it
    // over mutual TLS (the handshake fails for ever). Enroll for the
    // pending key instead: a fleet that recorded the rotation answers with
    // the certificate of that key, which makes it current.
    const auto before = identity_->signer();
    auto got = enrolment_->enroll_pending(*identity_);
    if (identity_->signer() != before) {
      return {RotationOutcome::rotated, got ? std::nullopt : std::optional<Error>(got.error())};
    }
    if (got) {
      return {RotationOutcome::unknown,
              Error{Errc::internal, "key rotation", "Enroll answer",
                    "the certificate was installed, the pending key not made current"}};
    }
    const Error& e = got.error();
    const bool refused = e.code == Errc::permission_denied &&
                         e.where.find(config_.enrolment_server) != std::string::npos;
    // Not a refusal (the fleet away, ...): asked again later. A refusal
    // says the fleet does not know the pending key as this device's, which
    // is not yet a definitive answer: the old key enrols again (the fleet
    // renews an expired certificate of the key it holds), and Renew asks
    // as before, whose answer is.
    if (!refused) return {RotationOutcome::unknown, e};
    log_info("management: key rotation: the fleet does not know the pending key (" + e.message() +
             "); enrolling the old key again to ask with Renew");
    if (auto again = enrolment_->enroll(*identity_); !again) {
      return {RotationOutcome::unknown,
              again.error().with_context("the old key's certificate expired; Enroll for the "
                                         "pending key refused (" +
                                         e.message() + "), then for the old key")};
    }
  }
  return enrolment_->rotate_once(*identity_, cutover);
}

void ManagementFeature::set_rotation_state(const std::string& why, bool audit) {
  {
    std::lock_guard lock(id_mu_);
    if (why == rotation_state_) return;
    rotation_state_ = why;
  }
  if (!why.empty()) log_warning("management: " + why);
  if (context_.health) {
    context_.health->set_component_health(
        kRotationComponent, why.empty() ? policy::Health::ok : policy::Health::degraded, why);
  }
  if (audit && context_.audit) {
    context_.audit->record(why.empty() ? audit::feature_recovered(kRotationComponent, 1)
                                       : audit::feature_failed("management: " + why));
  }
}

Result<std::string> ManagementFeature::install_certificate(const v1::InstallCertificate& c) {
  if (!enrolment_) {
    return fail_msg(Errc::failed_precondition,
                    "installing a certificate needs enrolment: set [management] "
                    "enrolment_server");
  }
  {
    // Its hold is the pending rotation's: releasing it here would let the
    // old key sign past the cutover the fleet may hold.
    std::lock_guard lock(id_mu_);
    if (rotation_) {
      return fail_msg(Errc::failed_precondition,
                      "a key rotation over Renew is pending (to be in use from sequence " +
                          std::to_string(rotation_->cutover) +
                          "): no certificate is installed by command meanwhile");
    }
  }
  const auto before = identity_->signer();
  std::vector<crypto::Bytes> chain;
  for (const auto& x : c.chain()) chain.emplace_back(x.begin(), x.end());
  const crypto::Bytes der(c.certificate().begin(), c.certificate().end());
  // A certificate for the pending key makes it current: nothing is signed
  // meanwhile, and the uplink goes on with the new key from where it stood.
  auto held = uplink_->hold(std::chrono::seconds(10));
  if (!held) return std::unexpected(held.error().with_context("installing a certificate"));
  auto installed = identity_->install_certificate(der, chain);
  const auto after = identity_->signer();
  auto kid = envelope::key_id(after->public_key());
  if (after != before && kid) {
    uplink_->release(after, *kid);
  } else {
    uplink_->release();
  }
  PORTIER_TRY(std::move(installed));
  // The same key: a renewal, the link starts again with the new file (a new
  // key restarts everything through on_key_changed).
  const auto from = std::to_string(held->next_sequence);
  if (after == before) {
    request_restart(false);
    return "certificate installed at sequence " + from;
  }
  auto old_id = envelope::key_id(before->public_key());
  if (!old_id || !kid) return "certificate installed; device key rotated at sequence " + from;
  log_info("management: device key rotated: " + *kid + " in use from sequence " + from + ", " +
           *old_id + " retired");
  return "certificate installed; device key rotated: key " + *kid + " in use from sequence " +
         from + ", key " + *old_id + " retired (destroyed once the signing parts restarted)";
}

void ManagementFeature::stop() {
  if (identity_thread_.joinable()) {
    {
      std::lock_guard lock(id_mu_);
      id_stopping_ = true;
    }
    id_cv_.notify_all();
    identity_thread_.join();
  }
  std::lock_guard lock(lifecycle_mu_);
  stop_core();
}

}  // namespace portier::management
