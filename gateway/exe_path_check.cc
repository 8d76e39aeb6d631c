#include "exe_path_check.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace portier::gateway {
namespace {

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool ok = false;
  bool operator==(const FileId& o) const { return ok && o.ok && dev == o.dev && ino == o.ino; }
};

FileId id_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, true};
}

FileId id_of_fd(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  return {st.st_dev, st.st_ino, true};
}

// The user namespace that owns the mount namespace at `ns_path`.
FileId owning_userns(const std::string& ns_path) {
  int fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  int owner = ::ioctl(fd, NS_GET_USERNS);
  ::close(fd);
  if (owner < 0) return {};
  FileId id = id_of_fd(owner);
  ::close(owner);
  return id;
}

struct Own {
  FileId userns = id_of("/proc/self/ns/user");
  FileId mntns = id_of("/proc/self/ns/mnt");
  FileId root = id_of("/");
};

const Own& own() {
  static const Own o;
  return o;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string exe_path_doubt(pid_t pid, const std::string& path, const struct stat& running) {
  const std::string proc = "/proc/" + std::to_string(pid);
  if (ends_with(path, " (deleted)"))
    return "the file it runs was deleted or replaced after it started";
  if (!(id_of(proc + "/ns/user") == own().userns)) return "it runs in another user namespace";
  if (!(id_of(proc + "/ns/mnt") == own().mntns) &&
      !(owning_userns(proc + "/ns/mnt") == own().userns)) {
    return "its mount namespace was made in another user namespace (without privilege)";
  }
  if (!(id_of(proc + "/root") == own().root)) {
    return "it runs under another root directory (chroot)";
  }
  if (!(id_of(path) == FileId{running.st_dev, running.st_ino, true})) {
    return "the file at that path is not the file it runs (a bind mount in another mount "
           "namespace, or a file replaced since)";
  }
  return {};
}

}  // namespace portier::gateway
