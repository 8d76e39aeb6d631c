#include "agent/management/management_feature.h"

#include <sys/stat.h>

#include <cerrno>

#include "agent/envelope/offline_notice.h"
#include "agent/identity/device_key.h"
#include "common/audit_events.h"
#include "common/crypto/x509.h"
#include "common/file_read.h"
#include "common/log.h"
#include "common/version.h"

namespace portier::management {
namespace {

constexpr const char* kAuditCursor = "audit_cursor";

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
  return uplink_ ? uplink_->stats() : UplinkStats{};
}

SenderStats ManagementFeature::sender_stats() const {
  return sender_ ? sender_->stats() : SenderStats{};
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
  const std::string dir = context.state_dir + "/management";
  PORTIER_TRY(make_private_dir(dir));
  auto id = identity::load_or_create_terminal_id(dir + "/terminal_id");
  if (!id) return std::unexpected(id.error());
  terminal_id_ = *id;
  const std::string key_file = config_.key_file.empty() ? dir + "/device.key" : config_.key_file;
  auto key = identity::load_or_create_key(key_file, config_.key_type);
  if (!key) return std::unexpected(key.error());
  auto signer = crypto::KeySigner::from(std::move(*key));
  if (!signer) return std::unexpected(signer.error());
  signer_ = std::make_unique<crypto::KeySigner>(std::move(*signer));
  auto kid = envelope::key_id(signer_->public_key());
  if (!kid) return std::unexpected(kid.error());

  auto box = outbox::Outbox::open({dir + "/outbox.db", config_.outbox_max_bytes,
                                   std::chrono::hours(24) * config_.outbox_max_age_days});
  if (!box) return std::unexpected(box.error());
  outbox_ = std::move(*box);
  auto state = outbox_->chain_state();
  if (!state) return std::unexpected(state.error());
  // A new session: the epoch is committed with the birth, the first
  // envelope of this start.
  ++state->session_epoch;
  UplinkOptions uo;
  uo.signing = config_.signing;
  uplink_ = std::make_unique<Uplink>(
      *outbox_, envelope::EnvelopeSealer(terminal_id_, signer_->type(), *state), *signer_, *kid,
      uo);
  uplink_->on_state([this](const std::string& f) { on_uplink_state(f); });

  auto offline = envelope::make_offline(terminal_id_, state->session_epoch, *signer_, *kid);
  if (!offline) return std::unexpected(offline.error());
  auto link = links_(config_, LinkContext{terminal_id_, offline->SerializeAsString(), key_file});
  if (!link) return std::unexpected(link.error());
  link_ = std::move(*link);
  // The fleet's keys (commands and acknowledgements) chain to these.
  auto anchors = read_trust_anchors(config_.command_trust_anchors);
  if (!anchors) return std::unexpected(anchors.error());
  sender_ = std::make_unique<OutboxSender>(
      *outbox_, *link_,
      link::AckVerifierOptions{.terminal_id = terminal_id_, .trust_anchors = *anchors},
      [this](std::string bytes) {
        if (commands_) commands_->receive(std::move(bytes));
      },
      SenderOptions{.window = config_.window});
  uplink_->on_stored([this] { sender_->wake(); });

  BirthInfo birth;
  birth.portierd_version = kVersion;
  birth.key_algorithm = std::string(crypto::name(signer_->type()));
  if (auto pem = signer_->public_key().to_pem()) birth.public_key_pem = *pem;
  TelemetryIntervals ti;
  ti.health = std::chrono::seconds(config_.health_interval_s);
  ti.decisions = std::chrono::seconds(config_.decisions_interval_s);
  ti.checkpoint = std::chrono::seconds(config_.checkpoint_interval_s);
  checkpointer_ = std::make_unique<AuditCheckpointer>(
      dir + "/audit-checkpoints.jsonl", terminal_id_, state->session_epoch, *signer_, *kid);
  if (context.audit) {
    // The trail must still hold what this terminal signed before: a trail
    // cut short or changed since is reported, and the daemon goes on.
    if (auto ok = checkpointer_->check_trail(context.audit->tail(100000)); !ok) {
      log_error("management: " + ok.error().message());
      context.audit->record(audit::audit_tampered(ok.error().message()));
      if (context.health) {
        context.health->set_component_health("audit trail", policy::Health::degraded,
                                             ok.error().message());
      }
    }
  }
  auto cursor = outbox_->counter(kAuditCursor);
  if (!cursor) return std::unexpected(cursor.error());
  sources_ = std::make_unique<TelemetrySources>(
      context.gateway, context.audit, *uplink_, birth, ti, *cursor,
      [this](std::uint64_t c) {
        if (auto ok = outbox_->set_counter(kAuditCursor, c); !ok) {
          log_warning("management: " + ok.error().message());
        }
      },
      checkpointer_.get());

  // The fleet's commands: verified against the configured trust anchors.
  commands::VerifierOptions vo;
  vo.terminal_id = terminal_id_;
  vo.trust_anchors = *anchors;
  if (!context.audit) {
    return fail(Errc::failed_precondition, "management", "commands", "need the audit trail");
  }
  auto cmds = FleetCommands::create(dir + "/commands.db", std::move(vo), *context.audit,
                                    context.control, *sources_, *uplink_, config_.link);
  if (!cmds) return std::unexpected(cmds.error());

  uplink_->start();
  sender_->start();
  sources_->start();
  commands_ = std::move(*cmds);
  commands_->start();
  if (auto ok = link_->start(*sender_); !ok) {
    stop();
    return ok;
  }
  log_info("management: terminal " + terminal_id_ + ", session " +
           std::to_string(state->session_epoch) + ", " + config_.link + " link to " +
           config_.server);
  return {};
}

void ManagementFeature::stop() {
  if (commands_) commands_->stop();
  if (sources_) sources_->stop();
  if (uplink_) uplink_->stop();
  if (link_) link_->stop();
  if (sender_) sender_->stop();
  commands_.reset();
  sources_.reset();
  checkpointer_.reset();
  sender_.reset();
  link_.reset();
  uplink_.reset();
  outbox_.reset();
  signer_.reset();
}

}  // namespace portier::management
