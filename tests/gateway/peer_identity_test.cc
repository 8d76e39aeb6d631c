// Caller identity from the kernel, on both paths: SO_PEERPIDFD, and the
// path of kernels before 6.5 (pidfd_open + proof that the pid holds this
// very connection, through sock_diag and /proc/<pid>/fd).
#include "peer_identity.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "peer_socket_proof.h"

namespace portier::gateway {
namespace {

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

TEST(PeerIdentity, ResolvesAProcessOnBothPaths) {
  for (bool peerpidfd : {true, false}) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ResolveOptions o;
    o.use_so_peerpidfd = peerpidfd;
    auto id = resolve_peer(sv[0], o);
    ASSERT_TRUE(id) << id.error().message();
    EXPECT_EQ(id->caller.uid, getuid());
    EXPECT_EQ(id->caller.pid, getpid());
    EXPECT_EQ(id->caller.exe, self_exe());
    EXPECT_EQ(id->exe_doubt, "");
    EXPECT_EQ(id->caller.sha256.size(), 64u);
    EXPECT_TRUE(verify_peer(*id));
    close(sv[0]);
    close(sv[1]);
  }
}

TEST(PeerSocketProof, NamesThePeerOfAConnection) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct stat other {};
  fstat(sv[1], &other);
  auto peer = unix_peer_inode(sv[0]);
  ASSERT_TRUE(peer) << peer.error().message();
  EXPECT_EQ(*peer, other.st_ino);
  EXPECT_TRUE(process_holds_socket(getpid(), *peer));
  close(sv[1]);
  EXPECT_FALSE(process_holds_socket(getpid(), other.st_ino));
  close(sv[0]);
}

// The pid-reuse attack on kernels without SO_PEERPIDFD, made deterministic:
// the process SO_PEERCRED names is alive but no longer holds the connection
// (it handed it to a child), as a process that got the connector's pid
// after the connector exited would be. The old path refuses it; with
// SO_PEERPIDFD the kernel pinned the connector itself, who is alive.
TEST(PeerIdentity, WithoutPeerPidfdAPidThatDoesNotHoldTheConnectionIsRefused) {
  char dir[] = "/tmp/portier-peer-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/s";
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(lfd, 4), 0);
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t connector = fork();
  if (connector == 0) {
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(1);
    pid_t holder = fork();
    if (holder == 0) {  // keeps the connection until told
      char x;
      (void)!read(done[0], &x, 1);
      _exit(0);
    }
    close(c);  // the connector lets go, and stays alive
    (void)!write(ready[1], "x", 1);
    char x;
    (void)!read(done[0], &x, 1);
    waitpid(holder, nullptr, 0);
    _exit(0);
  }
  char x;
  ASSERT_EQ(read(ready[0], &x, 1), 1);
  int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(fd, 0);

  ResolveOptions old_kernel;
  old_kernel.use_so_peerpidfd = false;
  auto refused = resolve_peer(fd, old_kernel);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("does not hold the connection"), std::string::npos)
      << refused.error().message();

  auto pinned = resolve_peer(fd, ResolveOptions{});
  int pidfd_probe = -1;
  socklen_t len = sizeof(pidfd_probe);
  if (getsockopt(fd, SOL_SOCKET, 77 /* SO_PEERPIDFD */, &pidfd_probe, &len) == 0) {
    close(pidfd_probe);
    ASSERT_TRUE(pinned) << pinned.error().message();
    EXPECT_EQ(pinned->caller.pid, connector);
  }
  (void)!write(done[1], "xx", 2);
  waitpid(connector, nullptr, 0);
  close(fd);
  close(lfd);
  std::filesystem::remove_all(dir);
}

TEST(ExecutableDigest, RefusesAFileOverTheLimitOnceAndRemembersIt) {
  char name[] = "/tmp/portier-big-XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 8 << 20), 0);
  ResolveOptions o;
  o.max_exe_bytes = 1 << 20;
  bool first = false;
  auto d = executable_digest(fd, o, &first);
  ASSERT_FALSE(d);
  EXPECT_TRUE(first);
  EXPECT_NE(d.error().message().find("max_exe_bytes"), std::string::npos) << d.error().message();
  auto again = executable_digest(fd, o, &first);
  ASSERT_FALSE(again);
  EXPECT_FALSE(first) << "a refusal already made is not news";
  close(fd);
  unlink(name);
}

TEST(ExecutableDigest, GivesUpAfterTheDeadline) {
  char name[] = "/tmp/portier-slow-XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 16ll << 30), 0);  // sparse: no disk used
  ResolveOptions o;
  o.max_exe_bytes = 32ull << 30;
  o.hash_timeout = std::chrono::milliseconds(1);
  auto d = executable_digest(fd, o);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("not hashed within 1 ms"), std::string::npos)
      << d.error().message();
  close(fd);
  unlink(name);
}

// A hash that ran out of time says nothing lasting about the file: a loaded
// machine must not leave an app refused once the load is gone.
TEST(ExecutableDigest, ATimeoutIsNotRemembered) {
  char name[] = "/tmp/portier-later-XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64 << 20), 0);
  ResolveOptions hurried;
  hurried.hash_timeout = std::chrono::milliseconds(0);
  bool first = false;
  auto d = executable_digest(fd, hurried, &first, 64101);
  ASSERT_FALSE(d);
  EXPECT_TRUE(first);
  auto later = executable_digest(fd, ResolveOptions{}, &first, 64101);
  EXPECT_TRUE(later) << later.error().message();
  close(fd);
  unlink(name);
}

// One uid cycling through new executables (copies, `touch`) evicts only its
// own cached digests: another uid's entry stays.
TEST(ExecutableDigest, OneUidCannotFlushAnotherUidsDigests) {
  char dir[] = "/tmp/portier-cache-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto make = [&](const std::string& n, off_t size) {
    std::string path = std::string(dir) + "/" + n;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
    EXPECT_EQ(ftruncate(fd, size), 0);
    return fd;
  };
  // The victim's entry: a refusal over max_exe_bytes, which is remembered,
  // so whether it is still cached shows in the answer under a higher limit.
  int victim = make("victim", 2 << 20);
  ResolveOptions strict;
  strict.max_exe_bytes = 1 << 20;
  ASSERT_FALSE(executable_digest(victim, strict, nullptr, 64201));
  for (int i = 0; i < 1100; ++i) {
    int fd = make("f" + std::to_string(i), 16);
    ASSERT_TRUE(executable_digest(fd, ResolveOptions{}, nullptr, 64202));
    close(fd);
  }
  auto still = executable_digest(victim, ResolveOptions{}, nullptr, 64201);
  EXPECT_FALSE(still) << "the victim's cached entry was flushed by another uid";
  close(victim);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace portier::gateway
