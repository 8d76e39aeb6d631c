#include "tools/fleet/token_rotation.h"

#include <algorithm>
#include <map>

#include "agent/envelope/envelope_chain.h"
#include "agent/management/token_rotation_output.h"
#include "portier/v1/command.pb.h"

namespace portier::fleet {
namespace {

constexpr const char* kWhere = "install-certificate";
// More rotate-key results than an operator ever sends one terminal.
constexpr std::size_t kMaxResults = 1000;

// A rotate-key command's result: the first stored (a repeat restates it
// later in the chain; it is no newer).
struct Rotation {
  std::string command_id;
  std::uint64_t sequence = 0;
  std::string output;
};

std::string key_pem_of(const crypto::CertificateRequest& csr) {
  auto key = csr.public_key();
  if (!key) return {};
  auto pem = key->to_pem();
  return pem ? *pem : std::string();
}

std::string key_id_of(const crypto::CertificateRequest& csr) {
  auto key = csr.public_key();
  if (!key) return "?";
  auto id = envelope::key_id(*key);
  return id ? *id : "?";
}

std::string where(const std::string& terminal) { return "terminal " + terminal; }

std::string named(const Rotation& r) {
  return "command " + r.command_id + ", sequence " + std::to_string(r.sequence);
}

// The CSR of a token rotation's output; nullopt when the output is not
// one or its CSR does not parse.
std::optional<crypto::CertificateRequest> csr_of(const Rotation& r) {
  auto pem = management::token_rotation_csr(r.output);
  if (!pem) return std::nullopt;
  auto csr = crypto::CertificateRequest::from_pem(*pem);
  if (!csr) return std::nullopt;
  return std::move(*csr);
}

}  // namespace

Result<TokenRotation> newest_token_rotation(FleetStore& store, const std::string& terminal,
                                            const TokenRotationAsked& asked) {
  auto known = store.terminal(terminal);
  if (!known) return std::unexpected(known.error());
  auto rows = store.sent_results(terminal, "rotate-key", kMaxResults);
  if (!rows) return std::unexpected(rows.error());
  // By command: OK results whose digest is the command's this fleet signed
  // (a result naming a known id for another command is not its result).
  std::map<std::string, Rotation> by_id;
  for (const auto& row : *rows) {
    v1::CommandResult r;
    if (!r.ParseFromString(row.result.result)) continue;
    if (r.command_digest() != row.command.digest || r.command_id() != row.command.command_id) {
      continue;
    }
    if (r.status() != v1::CommandResult::OK) continue;
    auto& at = by_id[r.command_id()];
    if (at.command_id.empty() || row.result.sequence < at.sequence) {
      at = Rotation{r.command_id(), row.result.sequence, r.output()};
    }
  }
  std::vector<Rotation> rotations;
  for (auto& [id, r] : by_id) rotations.push_back(std::move(r));
  std::sort(rotations.begin(), rotations.end(),
            [](const Rotation& a, const Rotation& b) { return a.sequence > b.sequence; });
  if (rotations.empty()) {
    return fail(Errc::not_found, kWhere, where(terminal),
                "no result of a rotate-key command this fleet sent is stored (a result counts "
                "once the terminal's signed chain covers it): send rotate-key and wait for its "
                "result");
  }
  const Rotation& newest = rotations.front();
  auto older = [&](auto match) -> const Rotation* {
    for (std::size_t i = 1; i < rotations.size(); ++i) {
      if (match(rotations[i])) return &rotations[i];
    }
    return nullptr;
  };
  if (asked.command_id && *asked.command_id != newest.command_id) {
    if (auto* old = older([&](const Rotation& r) { return r.command_id == *asked.command_id; })) {
      return fail(Errc::invalid_argument, kWhere, where(terminal),
                  "the result of rotate-key " + named(*old) + " is superseded by " + named(newest) +
                      ", the newest: only the newest is certified");
    }
    return fail(Errc::invalid_argument, kWhere, where(terminal),
                "no stored result of a rotate-key command " + *asked.command_id +
                    " this fleet sent (the newest is " + named(newest) + ")");
  }
  if (!management::token_rotation_csr(newest.output)) {
    return fail(Errc::failed_precondition, kWhere, where(terminal),
                "its newest rotate-key result (" + named(newest) +
                    ") is not of a new key in a PKCS#11 token: a key in a file rotates "
                    "through Renew (rotate-key without a token: the terminal renews with its "
                    "new key), never by install-certificate with a CSR");
  }
  auto csr = csr_of(newest);
  if (!csr) {
    return fail(Errc::invalid_argument, kWhere, where(terminal),
                "the CSR of its newest rotate-key result (" + named(newest) + ") does not parse");
  }
  if (auto ok = csr->verify_self_signature(); !ok) {
    return fail(Errc::invalid_argument, kWhere, where(terminal),
                "the CSR of its newest rotate-key result (" + named(newest) +
                    ") has no valid self-signature: " + ok.error().message());
  }
  if (csr->subject().common_name != terminal) {
    return fail(Errc::invalid_argument, kWhere, where(terminal),
                "the CSR of its newest rotate-key result (" + named(newest) + ") is for \"" +
                    csr->subject().common_name + "\"");
  }
  auto der = csr->der();
  if (!der) return std::unexpected(der.error());
  TokenRotation out{newest.command_id, newest.sequence, *csr, std::string(der->begin(), der->end()),
                    key_id_of(*csr)};
  const std::string key_pem = key_pem_of(*csr);
  if (key_pem.empty()) {
    return fail(
        Errc::invalid_argument, kWhere, where(terminal),
        "the CSR of its newest rotate-key result (" + named(newest) + ") has no usable key");
  }
  if (asked.csr) {
    const std::string asked_pem = key_pem_of(*asked.csr);
    const auto s = asked.csr->subject(), t = csr->subject();
    if (asked_pem != key_pem) {
      if (auto* old = older([&](const Rotation& r) {
            auto c = csr_of(r);
            return c && key_pem_of(*c) == asked_pem;
          })) {
        return fail(Errc::invalid_argument, kWhere, where(terminal),
                    "the CSR's key (key id " + key_id_of(*asked.csr) + ") is that of rotate-key " +
                        named(*old) + ", superseded by " + named(newest) + " (key id " +
                        out.key_id + "): only the newest is certified");
      }
      return fail(Errc::invalid_argument, kWhere, where(terminal),
                  "the CSR's key (key id " + key_id_of(*asked.csr) +
                      ") is not the key the terminal made in its newest rotate-key result (" +
                      named(newest) + ", key id " + out.key_id +
                      "): refused (a CSR with the terminal's name proves nothing)");
    }
    if (s.common_name != t.common_name || s.serial_number != t.serial_number) {
      return fail(Errc::invalid_argument, kWhere, where(terminal),
                  "the CSR's subject (CN \"" + s.common_name + "\", serial \"" + s.serial_number +
                      "\") is not that of the CSR in its newest rotate-key result (" +
                      named(newest) + ": CN \"" + t.common_name + "\", serial \"" +
                      t.serial_number + "\")");
    }
  }
  // A key already taken: the terminal's now, or one it used before; a
  // next key certified already waits for the certificate sent then.
  if (known->public_key_pem == key_pem) {
    return fail(Errc::failed_precondition, kWhere, where(terminal),
                "the key of its newest rotate-key result (" + named(newest) + ", key id " +
                    out.key_id + ") is already its key: installed");
  }
  auto keys = store.keys(terminal);
  if (!keys) return std::unexpected(keys.error());
  for (const auto& k : *keys) {
    if (k.public_key_pem != key_pem) continue;
    if (k.from_sequence != 0) {
      return fail(Errc::failed_precondition, kWhere, where(terminal),
                  "the key of its newest rotate-key result (" + named(newest) + ", key id " +
                      out.key_id + ") was already installed (it signed from sequence " +
                      std::to_string(k.from_sequence) + ")");
    }
    return fail(Errc::failed_precondition, kWhere, where(terminal),
                "the key of its newest rotate-key result (" + named(newest) + ", key id " +
                    out.key_id +
                    ") is already certified as its next key: the terminal takes it with the "
                    "certificate issued then");
  }
  return out;
}

}  // namespace portier::fleet
