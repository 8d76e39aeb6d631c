#include "agent/audit_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>

#include "common/crypto/sign.h"
#include "common/hex.h"

namespace portier::agent {
namespace {

constexpr const char* kWhere = "audit checkpoint";

void put_be64(crypto::Bytes& m, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) m.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Result<crypto::Bytes> message(const AuditCheckpoint& c) {
  static constexpr std::string_view kLabel = "portier/v1 audit checkpoint";
  auto head = from_hex(c.head);
  if (!head || head->size() != 32) {
    return fail(Errc::invalid_argument, kWhere, "head", "must be 64 hex digits");
  }
  crypto::Bytes m(kLabel.begin(), kLabel.end());
  m.push_back(0);
  m.insert(m.end(), c.terminal_id.begin(), c.terminal_id.end());
  m.push_back(0);
  put_be64(m, c.seq);
  m.insert(m.end(), head->begin(), head->end());
  put_be64(m, static_cast<std::uint64_t>(c.time_ms));
  put_be64(m, c.epoch);
  return m;
}

// The value of "key": a string (no escapes: our fields are hex and ids) or a
// number, as text; nullopt when absent.
std::optional<std::string> field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  auto at = line.find(k);
  if (at == std::string::npos) return std::nullopt;
  at += k.size();
  if (at < line.size() && line[at] == '"') {
    auto end = line.find('"', at + 1);
    if (end == std::string::npos) return std::nullopt;
    return line.substr(at + 1, end - at - 1);
  }
  auto end = line.find_first_of(",}", at);
  if (end == std::string::npos) return std::nullopt;
  return line.substr(at, end - at);
}

template <class T>
bool number(const std::optional<std::string>& s, T& out) {
  if (!s) return false;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), out);
  return ec == std::errc() && p == s->data() + s->size();
}

bool plain(const std::string& s) {
  for (char c : s) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

std::string when(std::int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Result<void> sign_checkpoint(AuditCheckpoint& c, const crypto::Signer& signer,
                             const std::string& key_id) {
  c.key_id = key_id;
  auto m = message(c);
  if (!m) return std::unexpected(m.error());
  auto sig = signer.sign(*m);
  if (!sig) return std::unexpected(sig.error());
  c.signature.assign(sig->begin(), sig->end());
  return {};
}

Result<void> verify_checkpoint(const AuditCheckpoint& c, const crypto::PublicKey& key) {
  auto m = message(c);
  if (!m) return std::unexpected(m.error());
  return crypto::verify(key, *m, crypto::byte_view(c.signature));
}

std::string to_json_line(const AuditCheckpoint& c) {
  return "{\"terminal\":\"" + c.terminal_id + "\",\"seq\":" + std::to_string(c.seq) +
         ",\"head\":\"" + c.head + "\",\"time_ms\":" + std::to_string(c.time_ms) +
         ",\"epoch\":" + std::to_string(c.epoch) + ",\"key_id\":\"" + c.key_id + "\",\"sig\":\"" +
         to_hex(c.signature) + "\"}";
}

Result<AuditCheckpoint> parse_checkpoint_line(const std::string& line) {
  AuditCheckpoint c;
  auto terminal = field(line, "terminal"), head = field(line, "head"),
       key_id = field(line, "key_id"), sig = field(line, "sig");
  if (line.empty() || line.front() != '{' || line.back() != '}' || !terminal || !head || !key_id ||
      !sig || !plain(*terminal) || !number(field(line, "seq"), c.seq) ||
      !number(field(line, "time_ms"), c.time_ms) || !number(field(line, "epoch"), c.epoch)) {
    return fail(Errc::invalid_argument, kWhere, "line",
                "not a checkpoint ({\"terminal\":…,\"seq\":N,\"head\":…,\"time_ms\":T,"
                "\"epoch\":E,\"key_id\":…,\"sig\":…})");
  }
  auto raw = from_hex(*sig);
  if (!raw) return fail(Errc::invalid_argument, kWhere, "sig", "is not hex");
  c.terminal_id = *terminal;
  c.head = *head;
  c.key_id = *key_id;
  c.signature.assign(raw->begin(), raw->end());
  return c;
}

Result<std::vector<AuditCheckpoint>> read_checkpoints(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail_errno(Errc::not_found, path, "cannot read", errno);
  std::vector<AuditCheckpoint> out;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (in.eof()) break;  // a torn last line (a crash while appending): not a checkpoint yet
    auto c = parse_checkpoint_line(line);
    if (!c)
      return with_context(Result<std::vector<AuditCheckpoint>>(std::unexpected(c.error())),
                          path + ":" + std::to_string(n));
    out.push_back(std::move(*c));
  }
  return out;
}

Result<void> append_checkpoint(const std::string& path, const AuditCheckpoint& c) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return fail_errno(Errc::io, path, "cannot open", errno);
  const std::string line = to_json_line(c) + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return fail_errno(Errc::io, path, "cannot append a checkpoint", err);
  return {};
}

CheckpointVerifyResult verify_with_checkpoints(const std::vector<std::string>& files,
                                               const std::vector<AuditCheckpoint>& checkpoints,
                                               const crypto::PublicKey& key) {
  return verify_with_checkpoints(files, checkpoints, std::vector<crypto::PublicKey>{key});
}

CheckpointVerifyResult verify_with_checkpoints(const std::vector<std::string>& files,
                                               const std::vector<AuditCheckpoint>& checkpoints,
                                               const std::vector<crypto::PublicKey>& keys) {
  CheckpointVerifyResult r;
  r.checkpoints = checkpoints.size();
  std::map<std::uint64_t, std::pair<std::string, std::string>> seen;  // seq -> (digest, where)
  std::map<std::uint64_t, const AuditCheckpoint*> wanted;
  for (auto& c : checkpoints) wanted[c.seq] = &c;
  r.chain = verify_audit_files(
      files, [&](std::uint64_t seq, const std::string& digest, const std::string& where) {
        if (wanted.contains(seq)) seen[seq] = {digest, where};
      });
  if (!r.chain.ok) {
    r.problem = r.chain.problem;
    return r;
  }
  std::string last_good = "none";
  for (auto& c : checkpoints) {
    const std::string signed_at =
        "the checkpoint of seq " + std::to_string(c.seq) + " signed at " + when(c.time_ms);
    std::string why = "no key given";
    bool verified = false;
    for (auto& key : keys) {
      auto ok = verify_checkpoint(c, key);
      if (ok) {
        verified = true;
        break;
      }
      why = ok.error().message();
    }
    if (!verified) {
      r.problem = signed_at + " does not verify with the terminal's key" +
                  (keys.size() > 1 ? std::string(" (any of ") + std::to_string(keys.size()) + ")"
                                   : std::string()) +
                  ": " + why;
      return r;
    }
    if (c.seq > r.chain.last_seq) {
      r.problem = "the trail ends at seq " + std::to_string(r.chain.last_seq) + ", but " +
                  signed_at + " covers it: records seq " + std::to_string(r.chain.last_seq + 1) +
                  ".." + std::to_string(c.seq) + " were truncated or deleted";
      return r;
    }
    auto it = seen.find(c.seq);
    if (it == seen.end()) {
      ++r.skipped;  // rotated out of the files given
      continue;
    }
    if (it->second.first != c.head) {
      r.problem = "record seq " + std::to_string(c.seq) + " at " + it->second.second +
                  " does not match " + signed_at +
                  ": the trail was rewritten at or before it (after the last matching "
                  "checkpoint: " +
                  last_good + ")";
      return r;
    }
    ++r.matched;
    last_good = "seq " + std::to_string(c.seq);
  }
  r.ok = true;
  return r;
}

std::string CheckpointVerifyResult::summary() const {
  if (!ok) return "FAIL: " + problem;
  return chain.summary() + "; " + std::to_string(matched) + " of " + std::to_string(checkpoints) +
         " signed checkpoints match" +
         (skipped ? " (" + std::to_string(skipped) + " cover rotated-out records)" : "");
}

std::string CheckpointVerifyResult::json() const {
  return "{\"ok\":" + std::string(ok ? "true" : "false") +
         ",\"records\":" + std::to_string(chain.records) +
         ",\"first_seq\":" + std::to_string(chain.first_seq) +
         ",\"last_seq\":" + std::to_string(chain.last_seq) + ",\"head\":\"" + chain.head +
         "\",\"checkpoints\":" + std::to_string(checkpoints) +
         ",\"matched\":" + std::to_string(matched) + ",\"skipped\":" + std::to_string(skipped) +
         ",\"problem\":\"" + json_escape(problem) + "\"}";
}

}  // namespace portier::agent
