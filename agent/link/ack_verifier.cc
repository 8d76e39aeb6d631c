// The terminal's check of the fleet's acknowledgements (see ack_verifier.h).
#include "agent/link/ack_verifier.h"

#include <algorithm>
#include <optional>
#include <span>

#include "common/crypto/sign.h"
#include "portier/v1/fleet.pb.h"

namespace portier::link {
namespace {

constexpr std::size_t kMaxTrusted = 4;
constexpr auto kTrustFor = std::chrono::minutes(10);

std::unexpected<Error> refuse(const char* kind, std::string why) {
  return std::unexpected(Error{Errc::permission_denied, "acknowledgement", kind, std::move(why)});
}

// The checks that need no signature; `signed_ack` gets the message.
Result<AckClaim> read_claim(std::string_view bytes, const AckVerifierOptions& options,
                            std::chrono::system_clock::time_point newest,
                            v1::SignedAcknowledgement& signed_ack) {
  if (bytes.size() > options.max_bytes) {
    return refuse("malformed", std::to_string(bytes.size()) + " bytes, more than the " +
                                   std::to_string(options.max_bytes) + " one may have");
  }
  if (!signed_ack.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return refuse("malformed", "not a SignedAcknowledgement");
  }
  v1::Acknowledgement ack;
  if (!ack.ParseFromString(signed_ack.acknowledgement())) {
    return refuse("malformed", "the signed bytes are not an Acknowledgement");
  }
  const auto n_certs = static_cast<std::size_t>(signed_ack.certificates_size());
  if (n_certs == 0) return refuse("malformed", "no certificates");
  if (n_certs > options.max_certificates) {
    return refuse("malformed", std::to_string(n_certs) + " certificates, more than the " +
                                   std::to_string(options.max_certificates) + " one may carry");
  }
  if (static_cast<std::size_t>(ack.stored_size()) > options.max_ranges) {
    return refuse("malformed", std::to_string(ack.stored_size()) + " ranges, more than " +
                                   std::to_string(options.max_ranges));
  }
  AckClaim claim;
  claim.ranges.reserve(static_cast<std::size_t>(ack.stored_size()));
  for (const auto& r : ack.stored()) {
    if (r.first() == 0 || r.last() < r.first() ||
        (!claim.ranges.empty() && r.first() <= claim.ranges.back().last)) {
      return refuse("malformed", "range " + std::to_string(r.first()) + ".." +
                                     std::to_string(r.last()) +
                                     " is empty, starts at 0 or overlaps the one before");
    }
    claim.ranges.push_back({r.first(), r.last()});
  }
  // google.protobuf.Timestamp's range (0001-01-01 .. 9999-12-31), and a
  // time after the epoch: the fleet signs with its clock.
  const auto& t = ack.time();
  if (!ack.has_time() || t.seconds() <= 0 || t.seconds() > 253402300799 || t.nanos() < 0 ||
      t.nanos() > 999999999) {
    return refuse("malformed", "no valid time");
  }
  claim.time = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos())));
  if (ack.terminal_id() != options.terminal_id) {
    const std::string shown = ack.terminal_id().size() <= 64
                                  ? ack.terminal_id()
                                  : ack.terminal_id().substr(0, 64) + "...";
    return refuse("other terminal", "it is for terminal '" + shown + "', not this one");
  }
  if (claim.time + options.reorder < newest) {
    const auto behind = std::chrono::duration_cast<std::chrono::milliseconds>(newest - claim.time);
    return refuse("old", "signed " + std::to_string(behind.count()) +
                             " ms before the newest acknowledgement that verified");
  }
  return claim;
}

}  // namespace

std::size_t AckVerifier::chain_checks() const {
  std::lock_guard lock(mu_);
  return chain_checks_;
}

std::size_t AckVerifier::signature_checks() const {
  std::lock_guard lock(mu_);
  return signature_checks_;
}

Result<AckClaim> AckVerifier::inspect(std::string_view bytes) const {
  std::chrono::system_clock::time_point newest;
  {
    std::lock_guard lock(mu_);
    newest = newest_;
  }
  v1::SignedAcknowledgement signed_ack;
  return read_claim(bytes, options_, newest, signed_ack);
}

Result<std::vector<SequenceRange>> AckVerifier::verify(std::string_view bytes) {
  std::chrono::system_clock::time_point newest;
  {
    std::lock_guard lock(mu_);
    newest = newest_;
  }
  v1::SignedAcknowledgement signed_ack;
  auto claim = read_claim(bytes, options_, newest, signed_ack);
  if (!claim) return std::unexpected(claim.error());
  const auto n_certs = static_cast<std::size_t>(signed_ack.certificates_size());
  if (signed_ack.signature().empty()) return refuse("unsigned", "there is no signature");

  const auto now = options_.clock();
  std::string certificates;
  for (const auto& c : signed_ack.certificates()) {
    certificates += std::to_string(c.size()) + ":" + c;
  }
  std::optional<crypto::PublicKey> key;
  {
    std::lock_guard lock(mu_);
    for (const auto& t : trusted_) {
      if (t.certificates == certificates && t.from <= now && now <= t.until) key = t.key;
    }
  }
  if (!key) {
    std::vector<crypto::Certificate> certs;
    for (std::size_t i = 0; i < n_certs; ++i) {
      auto c = crypto::Certificate::from_der(
          crypto::byte_view(signed_ack.certificates(static_cast<int>(i))));
      if (!c) {
        return refuse("malformed", "certificate " + std::to_string(i) +
                                       " does not parse: " + c.error().message());
      }
      certs.push_back(std::move(*c));
    }
    {
      std::lock_guard lock(mu_);
      ++chain_checks_;
    }
    if (auto ok =
            crypto::verify_chain(certs[0], std::span(certs).subspan(1), options_.trust_anchors, now,
                                 crypto::CertUsage::command_signing);
        !ok) {
      return refuse("untrusted chain", ok.error().message());
    }
    auto leaf_key = certs[0].public_key();
    if (!leaf_key) {
      return refuse("untrusted chain",
                    "the signer's certificate has no usable key: " + leaf_key.error().message());
    }
    auto from = certs[0].not_before(), until = std::min(certs[0].not_after(), now + kTrustFor);
    for (const auto& c : certs) {
      from = std::max(from, c.not_before());
      until = std::min(until, c.not_after());
    }
    key = *leaf_key;
    std::lock_guard lock(mu_);
    std::erase_if(trusted_, [&](const Trusted& t) {
      return t.certificates == certificates || now > t.until || now < t.from;
    });
    if (trusted_.size() >= kMaxTrusted) trusted_.erase(trusted_.begin());
    trusted_.push_back(Trusted{std::move(certificates), *leaf_key, from, until});
  }
  {
    std::lock_guard lock(mu_);
    ++signature_checks_;
  }
  if (auto ok = crypto::verify(*key, ack_signing_input(signed_ack.acknowledgement()),
                               crypto::byte_view(signed_ack.signature()));
      !ok) {
    return refuse("bad signature", ok.error().code == Errc::permission_denied
                                       ? "it does not verify with the signer's certificate"
                                       : ok.error().message());
  }
  std::lock_guard lock(mu_);
  newest_ = std::max(newest_, std::min(claim->time, now + options_.max_ahead));
  return std::move(claim->ranges);
}

}  // namespace portier::link
