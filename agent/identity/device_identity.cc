#include "agent/identity/device_identity.h"

#include "agent/identity/issued_certificate.h"
#include "agent/identity/signer_csr.h"
#include "common/log.h"

namespace portier::identity {

DeviceIdentity::DeviceIdentity(IdentityInfo info, std::unique_ptr<KeyStore> keys,
                               CertificateStore certificates)
    : info_(std::move(info)),
      keys_(std::move(keys)),
      certificates_(std::move(certificates)),
      now_([] { return std::chrono::system_clock::now(); }) {}

Result<std::unique_ptr<DeviceIdentity>> DeviceIdentity::open(IdentityInfo info,
                                                             std::unique_ptr<KeyStore> keys,
                                                             CertificateStore certificates) {
  std::unique_ptr<DeviceIdentity> id(
      new DeviceIdentity(std::move(info), std::move(keys), std::move(certificates)));
  std::lock_guard lock(id->mu_);
  auto cur = id->keys_->current();
  if (!cur) return std::unexpected(cur.error());
  id->current_ = *cur;
  auto pend = id->keys_->pending(false);
  if (!pend) return std::unexpected(pend.error());
  id->pending_ = *pend;
  // An old key kept aside by a rotation before the last stop: its
  // successor is current now, nothing signs with it any more.
  PORTIER_TRY(with_context(id->keys_->destroy_retired(), "key rotation"));
  auto installed = id->certificates_.load();
  if (!installed) return std::unexpected(installed.error());
  id->installed_ = *installed;
  if (id->installed_) {
    auto pub = id->installed_->cert.public_key();
    if (pub && id->pending_ && same_key(*pub, id->pending_->public_key())) {
      // The certificate of a rotation was written, the keys not yet swapped.
      PORTIER_TRY(id->promote_locked());
    } else if (!pub || !same_key(*pub, id->current_->public_key())) {
      // Not this key's: as good as none (enrol again, or rotate).
      log_warning(id->certificates_.path() +
                  ": the installed certificate is not for the device key: ignored");
      id->installed_.reset();
    }
  }
  return id;
}

std::shared_ptr<crypto::Signer> DeviceIdentity::signer() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::optional<InstalledCertificate> DeviceIdentity::certificate() const {
  std::lock_guard lock(mu_);
  return installed_;
}

void DeviceIdentity::on_key_changed(std::function<void()> callback) {
  std::lock_guard lock(mu_);
  on_key_changed_ = std::move(callback);
}

void DeviceIdentity::before_key_change(
    std::function<Result<void>(std::shared_ptr<crypto::Signer>)> callback) {
  std::lock_guard lock(mu_);
  before_key_change_ = std::move(callback);
}

std::optional<crypto::PublicKey> DeviceIdentity::pending_key() const {
  std::lock_guard lock(mu_);
  if (!pending_) return std::nullopt;
  return pending_->public_key();
}

Result<crypto::CertificateRequest> DeviceIdentity::current_csr() const {
  auto s = signer();
  return make_csr(*s, {info_.terminal_id, info_.serial, ""});
}

Result<std::string> DeviceIdentity::begin_rotation() {
  std::lock_guard lock(mu_);
  if (!pending_) {
    auto p = keys_->pending(true);
    if (!p) return std::unexpected(p.error().with_context("key rotation"));
    pending_ = *p;
  }
  auto csr = make_csr(*pending_, {info_.terminal_id, info_.serial, ""});
  if (!csr) return std::unexpected(csr.error().with_context("key rotation"));
  return csr->to_pem();
}

Result<void> DeviceIdentity::abandon_rotation() {
  std::lock_guard lock(mu_);
  if (!pending_) return {};
  PORTIER_TRY(with_context(keys_->discard_pending(), "key rotation"));
  pending_.reset();
  return {};
}

Result<void> DeviceIdentity::destroy_retired_key() {
  std::lock_guard lock(mu_);
  return with_context(keys_->destroy_retired(), "key rotation");
}

Result<void> DeviceIdentity::promote_locked() {
  PORTIER_TRY(with_context(keys_->promote(), "key rotation"));
  auto cur = keys_->current();
  if (!cur) return std::unexpected(cur.error().with_context("key rotation"));
  current_ = *cur;
  pending_.reset();
  return {};
}

Result<void> DeviceIdentity::install_certificate(crypto::ByteView der,
                                                 std::span<const crypto::Bytes> chain) {
  std::function<void()> changed;
  {
    std::lock_guard lock(mu_);
    const crypto::TimePoint now = now_();
    // For the pending key first (a rotation), else for the current key.
    Result<InstalledCertificate> checked = std::unexpected(Error{});
    bool for_pending = false;
    if (pending_) {
      checked = check_issued_certificate(
          der, chain,
          {pending_->public_key(), info_.terminal_id, info_.serial, info_.fleet_ca, now});
      for_pending = checked.has_value();
      // For the pending key, but wrong otherwise: that is the answer.
      if (!for_pending && checked.error().why.find("another key") == std::string::npos) {
        return std::unexpected(checked.error());
      }
    }
    if (!for_pending) {
      checked = check_issued_certificate(
          der, chain,
          {current_->public_key(), info_.terminal_id, info_.serial, info_.fleet_ca, now});
      if (!checked && pending_ && checked.error().why.find("another key") != std::string::npos) {
        return fail(Errc::permission_denied, "certificate from the fleet", "refused",
                    "it is for neither the current device key nor the pending one");
      }
    }
    if (!checked) return std::unexpected(checked.error());
    if (for_pending && before_key_change_) {
      PORTIER_TRY(with_context(before_key_change_(pending_), "key rotation"));
    }
    bool written = false;
    auto done = [&]() -> Result<void> {
      PORTIER_TRY(certificates_.install(checked->cert, checked->chain));
      written = true;
      installed_ = std::move(*checked);
      if (for_pending) PORTIER_TRY(promote_locked());
      return {};
    }();
    if (!done) {
      // Not written: the old key stays (hand back to it). Written: the next
      // open() finishes the promotion, the new key's handover stands.
      if (for_pending && before_key_change_ && !written) {
        if (auto back = before_key_change_(current_); !back) {
          log_warning("key rotation failed, and handing back to the old key too: " +
                      back.error().message());
        }
      }
      return done;
    }
    if (!for_pending) return {};
    changed = on_key_changed_;
  }
  if (changed) changed();
  return {};
}

}  // namespace portier::identity
