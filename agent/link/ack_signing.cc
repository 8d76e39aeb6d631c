// Signing the fleet's acknowledgements (see ack_signing.h).
#include "agent/link/ack_signing.h"

#include <algorithm>
#include <cstring>

#include "portier/v1/fleet.pb.h"

namespace portier::link {

std::vector<SequenceRange> to_ranges(std::vector<std::uint64_t> sequences) {
  std::sort(sequences.begin(), sequences.end());
  std::vector<SequenceRange> out;
  for (auto s : sequences) {
    if (s == 0) continue;
    if (!out.empty() && s <= out.back().last + 1) {
      out.back().last = std::max(out.back().last, s);
    } else {
      out.push_back({s, s});
    }
  }
  return out;
}

std::vector<AckedRange> with_digests(
    std::span<const SequenceRange> ranges,
    const std::function<std::optional<std::string>(std::uint64_t)>& digest_of) {
  std::vector<AckedRange> out;
  out.reserve(ranges.size());
  for (const auto& r : ranges) {
    auto d = digest_of(r.last);
    if (d) out.push_back({r.first, r.last, std::move(*d)});
  }
  return out;
}

crypto::Bytes ack_signing_input(std::string_view acknowledgement_bytes) {
  crypto::Bytes input(kAckLabel.size() + acknowledgement_bytes.size());
  std::memcpy(input.data(), kAckLabel.data(), kAckLabel.size());
  if (!acknowledgement_bytes.empty()) {
    std::memcpy(input.data() + kAckLabel.size(), acknowledgement_bytes.data(),
                acknowledgement_bytes.size());
  }
  return input;
}

Result<AckSigner> AckSigner::create(std::shared_ptr<const crypto::Signer> signer,
                                    std::span<const crypto::Certificate> chain) {
  constexpr const char* where = "acknowledgement signer";
  if (!signer) return fail(Errc::invalid_argument, where, "key", "none given");
  if (chain.empty()) {
    return fail(Errc::invalid_argument, where, "certificates",
                "none given: the signer's certificate must come first");
  }
  // The terminal checks the signature with certificates[0]'s key: a chain
  // for another key would make every acknowledgement refused.
  auto cert_key = chain[0].public_key();
  if (!cert_key) return std::unexpected(cert_key.error().with_context(where));
  auto cert_raw = cert_key->raw();
  auto signer_raw = signer->public_key().raw();
  if (!cert_raw) return std::unexpected(cert_raw.error().with_context(where));
  if (!signer_raw) return std::unexpected(signer_raw.error().with_context(where));
  if (cert_key->type() != signer->type() || *cert_raw != *signer_raw) {
    return fail(Errc::invalid_argument, where, "certificate " + chain[0].subject_cn(),
                "is not for the signing key");
  }
  std::vector<std::string> ders;
  for (const auto& c : chain) {
    auto der = c.der();
    if (!der) return std::unexpected(der.error().with_context(where));
    ders.emplace_back(der->begin(), der->end());
  }
  return AckSigner(std::move(signer), std::move(ders));
}

Result<std::string> AckSigner::sign(const std::string& terminal_id,
                                    std::span<const AckedRange> stored,
                                    std::chrono::system_clock::time_point now) const {
  v1::Acknowledgement ack;
  ack.set_terminal_id(terminal_id);
  for (const auto& r : stored) {
    auto* x = ack.add_stored();
    x->set_first(r.first);
    x->set_last(r.last);
    x->set_last_digest(r.last_digest);
  }
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  ack.mutable_time()->set_seconds(ns / 1'000'000'000);
  ack.mutable_time()->set_nanos(static_cast<std::int32_t>(ns % 1'000'000'000));
  v1::SignedAcknowledgement out;
  if (!ack.SerializeToString(out.mutable_acknowledgement())) {
    return fail(Errc::internal, "acknowledgement signer", terminal_id,
                "the acknowledgement could not be serialized");
  }
  auto sig = signer_->sign(ack_signing_input(out.acknowledgement()));
  if (!sig) return std::unexpected(sig.error().with_context("sign acknowledgement"));
  out.set_signature(std::string(sig->begin(), sig->end()));
  for (const auto& d : chain_der_) out.add_certificates(d);
  return out.SerializeAsString();
}

}  // namespace portier::link
