#include "agent/identity/pending_rotation.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <filesystem>

#include "common/file_read.h"
#include "common/file_write.h"

namespace portier::identity {
namespace {

constexpr std::string_view kCutover = "cutover ";

}  // namespace

Result<void> save_pending_rotation(const std::string& path, const PendingRotation& r) {
  if (r.cutover == 0 || r.pending_key_pem.empty()) {
    return fail(Errc::invalid_argument, path, "pending rotation",
                "needs a cutover (1 or more) and the pending key");
  }
  return replace_file(
      path, std::string(kCutover) + std::to_string(r.cutover) + "\n" + r.pending_key_pem, 0600);
}

Result<std::optional<PendingRotation>> load_pending_rotation(const std::string& path) {
  std::string text;
  if (const int e =
          read_small_file(path, text, ReadOptions{.max = 64 * 1024, .follow_symlinks = false});
      e != 0) {
    if (e == ENOENT) return std::optional<PendingRotation>();
    return fail_errno(Errc::io, path, "cannot read the pending rotation", e);
  }
  auto bad = [&](const std::string& why) {
    return fail(Errc::invalid_argument, path, "pending rotation", why);
  };
  const auto nl = text.find('\n');
  if (!text.starts_with(kCutover) || nl == std::string::npos) {
    return bad("does not start with \"cutover N\"");
  }
  PendingRotation r;
  const char* first = text.data() + kCutover.size();
  const char* last = text.data() + nl;
  auto [end, ec] = std::from_chars(first, last, r.cutover);
  if (ec != std::errc() || end != last || r.cutover == 0) {
    return bad("the cutover is not a sequence of 1 or more");
  }
  r.pending_key_pem = text.substr(nl + 1);
  if (r.pending_key_pem.find("-----BEGIN PUBLIC KEY-----") == std::string::npos) {
    return bad("holds no public key");
  }
  return r;
}

Result<void> remove_pending_rotation(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return {};
    return fail_errno(Errc::io, path, "cannot remove the pending rotation", errno);
  }
  const auto dir = std::filesystem::path(path).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace portier::identity
