// The terminal's check of the fleet's acknowledgements (see ack_verifier.h).
#include "agent/link/ack_verifier.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>

#include "common/crypto/digest.h"
#include "common/crypto/sign.h"
#include "common/file_read.h"
#include "common/file_write.h"
#include "common/log.h"
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
    if (r.last_digest().size() != kAckDigestBytes) {
      return refuse("malformed", "range " + std::to_string(r.first()) + ".." +
                                     std::to_string(r.last()) + " has a digest of " +
                                     std::to_string(r.last_digest().size()) + " bytes, not " +
                                     std::to_string(kAckDigestBytes));
    }
    claim.ranges.push_back({r.first(), r.last(), r.last_digest()});
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

// The newest time as newest_file holds it: "<seconds>.<nanoseconds>\n".
std::string format_time(std::chrono::system_clock::time_point t) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%09lld\n", static_cast<long long>(ns / 1'000'000'000),
                static_cast<long long>(ns % 1'000'000'000));
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view text) {
  if (text.empty() || text.back() != '\n') return std::nullopt;
  text.remove_suffix(1);
  const auto dot = text.find('.');
  if (dot == std::string_view::npos || text.size() - dot - 1 != 9) return std::nullopt;
  long long seconds = 0, nanos = 0;
  const auto sec = text.substr(0, dot), frac = text.substr(dot + 1);
  auto a = std::from_chars(sec.data(), sec.data() + sec.size(), seconds);
  auto b = std::from_chars(frac.data(), frac.data() + frac.size(), nanos);
  if (a.ec != std::errc{} || a.ptr != sec.data() + sec.size() || b.ec != std::errc{} ||
      b.ptr != frac.data() + frac.size() || seconds < 0 || seconds > 253402300799 || nanos < 0) {
    return std::nullopt;
  }
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos)));
}

std::string sha256_of(std::string_view bytes) {
  auto d = crypto::digest(crypto::DigestAlgo::sha256, bytes);
  return d ? std::string(d->begin(), d->end()) : std::string();
}

}  // namespace

AckVerifier::AckVerifier(AckVerifierOptions options) : options_(std::move(options)) {
  if (options_.newest_file.empty()) return;
  std::string text;
  const int e = read_small_file(options_.newest_file, text, ReadOptions{.max = 64});
  if (e == ENOENT) return;  // the first start
  auto t = e == 0 ? parse_time(text) : std::nullopt;
  if (!t) {
    log_warning(
        "management: " + options_.newest_file +
        (e == 0 ? " does not hold a time" : std::string(" cannot be read: ") + std::strerror(e)) +
        "; acknowledgements are taken from any time until one verifies");
    return;
  }
  // At most max_ahead past the clock, as when it was taken.
  newest_ = persisted_ = std::min(*t, options_.clock() + options_.max_ahead);
}

AckVerifier::~AckVerifier() {
  std::lock_guard p(persist_mu_);
  persist();
}

std::chrono::system_clock::time_point AckVerifier::newest() const {
  std::lock_guard lock(mu_);
  return newest_;
}

void AckVerifier::persist() {
  std::chrono::system_clock::time_point newest;
  {
    std::lock_guard lock(mu_);
    if (options_.newest_file.empty() || newest_ <= persisted_) return;
    newest = newest_;
  }
  auto ok = replace_file(options_.newest_file, format_time(newest), 0600);
  std::lock_guard lock(mu_);
  persisted_at_ = std::chrono::steady_clock::now();
  if (!ok) {
    log_warning("management: cannot keep the newest acknowledgement's time: " +
                ok.error().message());
    return;
  }
  persisted_ = std::max(persisted_, newest);
}

void AckVerifier::persist_due() {
  {
    std::lock_guard lock(mu_);
    if (options_.newest_file.empty() || newest_ <= persisted_) return;
    const bool written = persisted_at_ != std::chrono::steady_clock::time_point{};
    if (written && std::chrono::steady_clock::now() - persisted_at_ < options_.persist_every &&
        newest_ - persisted_ <= options_.persist_at_once) {
      return;
    }
  }
  std::lock_guard p(persist_mu_);
  persist();
}

void AckVerifier::remember_refusal(std::string_view bytes, const char* kind) {
  if (options_.remembered_refusals == 0) return;
  auto d = sha256_of(bytes);
  if (d.empty()) return;
  std::lock_guard lock(mu_);
  if (refused_.size() >= options_.remembered_refusals) refused_.pop_front();
  refused_.push_back(Refused{std::move(d), kind});
}

const char* AckVerifier::refused_before(std::string_view bytes) const {
  {
    std::lock_guard lock(mu_);
    if (refused_.empty()) return nullptr;
  }
  const auto d = sha256_of(bytes);
  std::lock_guard lock(mu_);
  for (const auto& r : refused_) {
    if (r.digest == d) {
      ++repeats_refused_;
      return r.kind;
    }
  }
  return nullptr;
}

std::size_t AckVerifier::repeats_refused() const {
  std::lock_guard lock(mu_);
  return repeats_refused_;
}

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
  auto claim = read_claim(bytes, options_, newest, signed_ack);
  if (!claim) return claim;
  if (const char* kind = refused_before(bytes)) {
    return refuse(kind, "the same bytes as one refused before: not checked again");
  }
  return claim;
}

Result<std::vector<AckedRange>> AckVerifier::verify(std::string_view bytes) {
  std::chrono::system_clock::time_point newest;
  {
    std::lock_guard lock(mu_);
    newest = newest_;
  }
  v1::SignedAcknowledgement signed_ack;
  auto claim = read_claim(bytes, options_, newest, signed_ack);
  if (!claim) return std::unexpected(claim.error());
  if (const char* kind = refused_before(bytes)) {
    return refuse(kind, "the same bytes as one refused before: not checked again");
  }
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
      remember_refusal(bytes, "untrusted chain");
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
    if (ok.error().code != Errc::permission_denied) {
      return refuse("bad signature", ok.error().message());
    }
    remember_refusal(bytes, "bad signature");
    return refuse("bad signature", "it does not verify with the signer's certificate");
  }
  {
    std::lock_guard lock(mu_);
    newest_ = std::max(newest_, std::min(claim->time, now + options_.max_ahead));
  }
  persist_due();
  return std::move(claim->ranges);
}

}  // namespace portier::link
