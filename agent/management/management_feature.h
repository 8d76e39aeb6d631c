// The management link as an agent feature (issue 10): the terminal's
// identity (terminal id and device key under <state_dir>/management/), the
// outbox, the uplink that seals and signs, the sources of telemetry, and
// the link (MQTT or gRPC, from the config) with the sender that drains the
// outbox over it. A failing outbox (a full disk) is a health state and an
// audit record; nothing is lost meanwhile.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "agent/feature.h"
#include "agent/link/link.h"
#include "agent/management/management_config.h"
#include "agent/management/outbox_sender.h"
#include "agent/management/telemetry_sources.h"
#include "agent/management/uplink.h"
#include "agent/outbox/outbox.h"
#include "common/crypto/signer.h"

namespace portier::management {

// What a link needs to know of this terminal.
struct LinkContext {
  std::string terminal_id;
  std::string offline_notice;  // a serialized, signed portier.v1.Offline (the last will)
};
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

 private:
  void on_uplink_state(const std::string& failure);

  ManagementConfig config_;
  LinkFactory links_;
  agent::FeatureContext context_;
  std::string terminal_id_;
  std::unique_ptr<crypto::KeySigner> signer_;
  std::unique_ptr<outbox::Outbox> outbox_;
  std::unique_ptr<Uplink> uplink_;
  std::unique_ptr<TelemetrySources> sources_;
  std::unique_ptr<link::Link> link_;
  std::unique_ptr<OutboxSender> sender_;
};

}  // namespace portier::management
