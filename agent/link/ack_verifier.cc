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

}  // namespace

std::size_t AckVerifier::chain_checks() const {
  std::lock_guard lock(mu_);
  return chain_checks_;
}

Result<std::vector<SequenceRange>> AckVerifier::verify(std::string_view bytes) {
  if (bytes.size() > options_.max_bytes) {
    return refuse("malformed", std::to_string(bytes.size()) + " bytes, more than the " +
                                   std::to_string(options_.max_bytes) + " one may have");
  }
  v1::SignedAcknowledgement signed_ack;
  if (!signed_ack.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return refuse("malformed", "not a SignedAcknowledgement");
  }
  v1::Acknowledgement ack;
  if (!ack.ParseFromString(signed_ack.acknowledgement())) {
    return refuse("malformed", "the signed bytes are not an Acknowledgement");
  }
  const auto n_certs = static_cast<std::size_t>(signed_ack.certificates_size());
  if (n_certs == 0) return refuse("malformed", "no certificates");
  if (n_certs > options_.max_certificates) {
    return refuse("malformed", std::to_string(n_certs) + " certificates, more than the " +
                                   std::to_string(options_.max_certificates) + " one may carry");
  }
  if (static_cast<std::size_t>(ack.stored_size()) > options_.max_ranges) {
    return refuse("malformed", std::to_string(ack.stored_size()) + " ranges, more than " +
                                   std::to_string(options_.max_ranges));
  }
  std::vector<SequenceRange> ranges;
  ranges.reserve(static_cast<std::size_t>(ack.stored_size()));
  for (const auto& r : ack.stored()) {
    if (r.first() == 0 || r.last() < r.first() ||
        (!ranges.empty() && r.first() <= ranges.back().last)) {
      return refuse("malformed", "range " + std::to_string(r.first()) + ".." +
                                     std::to_string(r.last()) +
                                     " is empty, starts at 0 or overlaps the one before");
    }
    ranges.push_back({r.first(), r.last()});
  }
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
  if (auto ok = crypto::verify(*key, ack_signing_input(signed_ack.acknowledgement()),
                               crypto::byte_view(signed_ack.signature()));
      !ok) {
    return refuse("bad signature", ok.error().code == Errc::permission_denied
                                       ? "it does not verify with the signer's certificate"
                                       : ok.error().message());
  }
  if (ack.terminal_id() != options_.terminal_id) {
    const std::string shown = ack.terminal_id().size() <= 64
                                  ? ack.terminal_id()
                                  : ack.terminal_id().substr(0, 64) + "...";
    return refuse("other terminal", "it is for terminal '" + shown + "', not this one");
  }
  return ranges;
}

}  // namespace portier::link
