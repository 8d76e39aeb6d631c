// The management link as an agent feature (issue 10): the terminal's
// identity (terminal id and device key under <state_dir>/management/), the
// outbox, the uplink that seals and signs, the sources of telemetry, and
// the link (MQTT or gRPC, from the config) with the sender that drains the
// outbox over it. A failing outbox (a full disk) is a health state and an
// audit record; nothing is lost meanwhile.
//
// Enrolment (issue 10, item 1; enrolment_server set): the device key is
// made at the first start and signs from then on, so the outbox fills
// before the terminal has a certificate; the link stays down until the
// fleet has enrolled the key (agent/identity/enrolment_client.h), tried
// again with a growing delay while the fleet is away or refuses. The
// health component "management enrolment" says why the link is down (not
// enrolled yet, the fleet's reason for a refusal), and a refusal is an
// audit record. The certificate is renewed at renew_at_percent of its
// lifetime and the link started again on the new files. RotateDeviceKey
// makes a new key, has it certified over the old key's mutual TLS and
// destroys the old one. Its cutover is the next sequence of the outbox's
// chain: the uplink holds at a committed run for the Renew, which names
// that sequence, and goes on from there with the new key (or the old one
// when the rotation failed), so the old key signs nothing from the cutover
// on (the fleet refuses that as a retired key's). The audit checkpoints hand
// over to the new key before the old one is destroyed. The signing parts and
// the link then start again with the new key: a new session, whose birth
// carries the new key.
//
// A rotation whose answer is lost (review finding M4): the fleet may have
// recorded it (and refuse the old key from the cutover on) while the
// terminal never heard. So before the fleet is asked, the pending key's
// public key and the cutover are recorded (<state_dir>/management/
// rotation.pending, identity/pending_rotation.h), and until a definitive
// answer the uplink stays held at the cutover: the old key signs nothing
// from there on, whatever happens. The command answers at once after one
// attempt ("pending: ..."); the identity thread asks again with a growing
// delay, and portierd started with the record holds its uplink at the
// cutover from the start and asks again. Asked again with the same pending
// key, the fleet answers with the certificate it recorded (the new key then
// signs from the cutover); its refusal (it recorded nothing) destroys the
// pending key and the record and the old key goes on. The health component
// "management key rotation" says what is pending. Payloads submitted while
// held wait in the uplink's memory queue (bounded by max_queued): a SIGKILL
// loses them; the chain itself stays whole and nothing is signed wrongly.
//
// The device key in a PKCS#11 token ([management] pkcs11_*): made in the
// token at the first start (sensitive, never extractable), its CSR signed
// there. gRPC and Paho take a TLS client key only as a file, so the link
// presents cert_file and tls_key_file, the enrolled device certificate is
// <state_dir>/management/device.crt, renewal is Enroll again for the same
// key (enrolment_client.h), and RotateDeviceKey makes the new key in the
// token and answers with its CSR: the fleet's certificate for it comes
// with InstallCertificate, which makes it current at the uplink's next
// sequence (held there as for a rotation over Renew); the fleet, which
// could not know that sequence when it certified the CSR, takes the new key
// over at its first envelope (no cutover: the old key never left its token).
// The old key, relabelled <label>.retired, is destroyed in the token once
// the signing parts have started again with the new key.
//
// Threads: start() and stop() come from the supervisor; the identity
// thread enrols, renews and restarts the link and the signing parts; the
// command thread asks it for a restart after a rotation, never doing one
// itself (stopping the commands joins that thread).
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/feature.h"
#include "agent/identity/device_identity.h"
#include "agent/identity/enrolment_client.h"
#include "agent/identity/pending_rotation.h"
#include "agent/link/link.h"
#include "agent/management/audit_checkpointer.h"
#include "agent/management/fleet_commands.h"
#include "agent/management/management_config.h"
#include "agent/management/outbox_sender.h"
#include "agent/management/telemetry_sources.h"
#include "agent/management/uplink.h"
#include "agent/outbox/outbox.h"
#include "common/crypto/signer.h"
#include "common/crypto/x509.h"

namespace portier::management {

// What a link needs to know of this terminal.
struct LinkContext {
  std::string terminal_id;
  std::string offline_notice;   // a serialized, signed portier.v1.Offline (the last will)
  std::string device_key_file;  // the device key's PEM file (the TLS key by default)
};
// The link's config: ManagementConfig::cert_file is then the certificate
// to present (with enrolment, the one installed).
using LinkFactory =
    std::function<Result<std::unique_ptr<link::Link>>(const ManagementConfig&, const LinkContext&)>;
// The links of this build, by ManagementConfig::link.
LinkFactory default_link_factory();

class ManagementFeature final : public agent::Feature {
 public:
  ManagementFeature(ManagementConfig config, LinkFactory links);
  ~ManagementFeature() override;
  std::string_view name() const override { return "management"; }
  Result<void> start(const agent::FeatureContext& context) override;
  void stop() override;

  // For tests and the daemon's status: where things stand.
  std::string terminal_id() const;
  UplinkStats uplink_stats() const;
  SenderStats sender_stats() const;
  // "" once enrolled (or without enrolment), else why the link is down.
  std::string enrolment_state() const;
  // "" when no key rotation is pending, else what it waits for.
  std::string rotation_state() const;

 private:
  void on_uplink_state(const std::string& failure);
  // The outbox, the uplink, the sources and the commands, signing with the
  // identity's current key.
  Result<void> start_core();
  void stop_core();
  // The link and the sender, with the certificate installed now.
  Result<void> start_link();
  void stop_link();
  // The identity thread: enrol, bring the link up, renew, restart.
  void run_identity();
  void set_enrolment_state(const std::string& why, bool refused);
  // The RotateDeviceKey and InstallCertificate commands (command thread).
  Result<std::string> rotate_key();
  Result<std::string> install_certificate(const v1::InstallCertificate& c);
  // One Renew for the pending rotation `r` (at most one at a time: the
  // command thread's first, then the identity thread's); a definitive
  // answer settles it (the uplink released, the record removed).
  identity::RotationOutcome ask_rotation(const identity::PendingRotation& r);
  // One question to the fleet for the pending rotation to `cutover`:
  // Renew, or Enroll for the pending key once the old certificate expired.
  identity::RotationAttempt ask_fleet(std::uint64_t cutover);
  void set_rotation_state(const std::string& why, bool audit);
  // Wakes the identity thread for a restart of the signing parts (a new
  // key) or of the link only (a new certificate).
  void request_restart(bool core);

  ManagementConfig config_;
  LinkFactory links_;
  agent::FeatureContext context_;
  std::string dir_;
  std::string terminal_id_;
  // The device key's file (empty: in a PKCS#11 token), the identity's
  // certificate and the certificate the link presents.
  std::string key_file_, cert_file_, link_cert_file_;
  std::unique_ptr<identity::DeviceIdentity> identity_;
  std::unique_ptr<identity::EnrolmentClient> enrolment_;  // null: no enrolment configured
  std::vector<crypto::Certificate> trust_anchors_;        // command_trust_anchors, read at start
  std::shared_ptr<crypto::Signer> signer_;                // the key of the running core
  std::uint64_t session_epoch_ = 0;

  // start_core/stop_core/start_link/stop_link, from start(), stop() and the
  // identity thread.
  mutable std::mutex lifecycle_mu_;
  // sender_ as the uplink's on_stored sees it.
  mutable std::mutex sender_mu_;
  std::thread identity_thread_;
  mutable std::mutex id_mu_;
  std::condition_variable id_cv_;
  bool id_stopping_ = false;
  bool restart_core_ = false, restart_link_ = false;
  std::string enrolment_state_;
  // The pending rotation (guarded by id_mu_): its record, whether the
  // command thread is asking now, when the identity thread asks next, and
  // whether it cannot be finished here (its pending key is gone).
  std::string rotation_file_;
  std::optional<identity::PendingRotation> rotation_;
  bool rotation_busy_ = false, rotation_stuck_ = false;
  std::chrono::steady_clock::time_point rotation_due_;
  std::chrono::seconds rotation_delay_{1};
  unsigned rotation_attempts_ = 0;  // unanswered since this start
  std::string rotation_state_;
  std::string last_refusal_;  // the fleet's reason, for the command's result
  // The fleet refused the rotation (nothing recorded) but its record could
  // not be removed: held until it is (the next attempt removes it without
  // asking again), its reason.
  std::optional<std::string> rotation_refused_;

  std::unique_ptr<outbox::Outbox> outbox_;
  std::unique_ptr<Uplink> uplink_;
  std::unique_ptr<AuditCheckpointer> checkpointer_;
  std::unique_ptr<TelemetrySources> sources_;
  std::unique_ptr<FleetCommands> commands_;
  std::unique_ptr<link::Link> link_;
  std::unique_ptr<OutboxSender> sender_;
};

}  // namespace portier::management
