#include "agent/health/integrity_baseline.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/crypto/bytes.h"
#include "common/crypto/digest.h"
#include "common/crypto/hmac.h"
#include "common/crypto/random.h"
#include "common/hex.h"

namespace portier::health {
namespace {

constexpr const char* kWhere = "health/baseline";

Result<std::string> read_all(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(errno == ENOENT ? Errc::not_found : Errc::io, kWhere, path, std::strerror(errno));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return fail(Errc::io, kWhere, path, std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

Result<std::string> hmac_hex(const std::string& key, const std::string& data) {
  auto mac = crypto::hmac(crypto::DigestAlgo::sha256, key, data);
  if (!mac) return fail(Errc::internal, kWhere, "HMAC-SHA256", mac.error().message());
  return to_hex(mac->data(), mac->size());
}

Result<std::string> read_key(const std::string& key_file) {
  struct stat st {};
  if (stat(key_file.c_str(), &st) != 0)
    return fail(Errc::not_found, kWhere, key_file,
                std::string("cannot stat the key file: ") + std::strerror(errno));
  if (st.st_mode & 077)
    return fail(Errc::permission_denied, kWhere, key_file,
                "key file must be mode 0600 (it is readable by others)");
  auto key = read_all(key_file);
  if (!key) return key;
  if (key->size() < 16)
    return fail(Errc::invalid_argument, kWhere, key_file, "key shorter than 16 bytes");
  return key;
}

Result<void> write_file_atomic(const std::string& path, const std::string& data) {
  auto tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Errc::io, kWhere, tmp, std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return fail(Errc::io, kWhere, tmp, std::strerror(e));
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(tmp.c_str());
    return fail(Errc::io, kWhere, tmp, std::strerror(errno));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    return fail(Errc::io, kWhere, path, std::strerror(e));
  }
  return {};
}

}  // namespace

Result<std::string> sha256_file(const std::string& path) {
  auto d = crypto::digest_file(crypto::DigestAlgo::sha256, path);
  if (!d) return fail(d.error().code, kWhere, path, d.error().why);
  return to_hex(d->data(), d->size());
}

Result<void> create_baseline(const std::vector<std::string>& paths,
                             const std::string& baseline_file, const std::string& key_file) {
  if (access(key_file.c_str(), F_OK) != 0) {
    std::string k(32, '\0');
    auto r = crypto::random_bytes(
        std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(k.data()), k.size()));
    if (!r) return fail(Errc::internal, kWhere, key_file, r.error().message());
    auto w = write_file_atomic(key_file, k);
    crypto::cleanse(k);
    if (!w) return w;
  }
  auto key = read_key(key_file);
  if (!key) return std::unexpected(key.error());
  std::string body = "portier-baseline v1\n";
  for (const auto& p : paths) {
    if (p.empty() || p.find('\n') != std::string::npos)
      return fail(Errc::invalid_argument, kWhere, p, "path empty or with a newline");
    auto d = sha256_file(p);
    if (!d) return std::unexpected(d.error());
    body += "sha256 " + *d + " " + p + "\n";
  }
  auto mac = hmac_hex(*key, body);
  crypto::cleanse(*key);
  if (!mac) return std::unexpected(mac.error());
  return write_file_atomic(baseline_file, body + "hmac-sha256 " + *mac + "\n");
}

CheckResult IntegrityBaselineCheck::run(const std::atomic<bool>& cancel) {
  auto data = read_all(o_.baseline_file);
  if (!data)
    return CheckResult::fail("no readable baseline at " + o_.baseline_file + " (" +
                             data.error().why + "): provision it (portierctl health baseline)");
  auto key = read_key(o_.key_file);
  if (!key) return CheckResult::fail("baseline key unusable: " + key.error().message());
  // Split off the last line: the HMAC over everything before it.
  auto pos = data->rfind("hmac-sha256 ");
  bool ok = pos != std::string::npos && (pos == 0 || (*data)[pos - 1] == '\n');
  std::string body, mac_line;
  if (ok) {
    body = data->substr(0, pos);
    mac_line = data->substr(pos + 12);
    while (!mac_line.empty() && mac_line.back() == '\n') mac_line.pop_back();
  }
  auto mac = hmac_hex(*key, body);
  crypto::cleanse(*key);
  if (!ok || !mac || mac_line.size() != mac->size() ||
      !crypto::constant_time_equal(crypto::byte_view(mac_line), crypto::byte_view(*mac)) ||
      body.rfind("portier-baseline v1\n", 0) != 0)
    return CheckResult::fail(
        "baseline integrity check failed: " + o_.baseline_file +
        " was altered or the key does not match; treat the terminal as tampered and re-provision");
  std::istringstream in(body);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::string> changed, missing, unreadable;
  int files = 0;
  while (std::getline(in, line) && !cancel) {
    if (line.rfind("sha256 ", 0) != 0 || line.size() < 7 + 64 + 2) continue;
    auto want = line.substr(7, 64);
    auto path = line.substr(7 + 64 + 1);
    ++files;
    auto got = sha256_file(path);
    if (!got) {
      (got.error().code == Errc::not_found ? missing : unreadable).push_back(path);
    } else if (*got != want) {
      changed.push_back(path);
    }
  }
  CheckResult r;
  r.values["files"] = std::to_string(files);
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  std::string reason;
  if (!changed.empty()) {
    r.values["changed"] = join(changed);
    reason += "changed since provisioning: " + join(changed);
  }
  if (!missing.empty()) {
    r.values["missing"] = join(missing);
    reason += (reason.empty() ? "" : "; ") + std::string("missing: ") + join(missing);
  }
  if (!unreadable.empty()) {
    r.values["unreadable"] = join(unreadable);
    reason += (reason.empty() ? "" : "; ") + std::string("cannot read: ") + join(unreadable);
  }
  if (!reason.empty()) {
    r.status = CheckResult::Status::fail;
    r.reason = reason + " (investigate; re-provision the baseline only after an authorised change)";
  } else {
    r.reason = std::to_string(files) + " files match the provisioned baseline";
  }
  return r;
}

}  // namespace portier::health
