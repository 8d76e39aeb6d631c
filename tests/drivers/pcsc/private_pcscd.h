// A pcscd of the test's own, with the vpcd virtual reader (two slots:
// "<name> 00 00" on TCP port P, "<name> 00 01" on P+1) on free ports.
//
// How the test process reaches it: pcscd always creates its socket (and
// pid file) in the fixed folder /run/pcscd. The child that becomes pcscd
// enters a mount namespace of its own (unshare CLONE_NEWNS, as root),
// mounts a tmpfs over /run and bind-mounts a per-process temp folder on
// /run/pcscd; pcscd's socket therefore appears in that temp folder, and
// the test process points libpcsclite at it with PCSCLITE_CSOCK_NAME.
// libpcsclite reads that variable once per process, so the folder is one
// per test process (process_socket()), shared by the tests of the process,
// which run one after the other; ctest runs each test in its own process,
// so parallel runs (ctest -j) never share a pcscd, port or folder. The
// system's own pcscd, if any, is never contacted.
//
// Cleanup: the child gets PR_SET_PDEATHSIG(SIGKILL), so pcscd dies with
// the test process even when it crashes; the destructor stops it (SIGTERM,
// then SIGKILL) and removes the temp folder.
#pragma once

#include <sys/types.h>

#include <string>

namespace portier::drivers::pcsc_testing {

// The socket path every test of this process uses (PCSCLITE_CSOCK_NAME is
// set to it on first call). Call before the first PC/SC call.
const std::string& process_socket();

class PrivatePcscd {
 public:
  // Why these tests cannot run here, or "" when they can: needs root (for
  // the mount namespace), pcscd and the vpcd driver.
  static std::string unavailable_reason();

  explicit PrivatePcscd(std::string friendly_name = "Virtual PCD");
  ~PrivatePcscd();
  PrivatePcscd(const PrivatePcscd&) = delete;
  PrivatePcscd& operator=(const PrivatePcscd&) = delete;

  // Starts pcscd on free ports and waits (10 s at most) until it lists both
  // readers: "" then, else why not. May be called again after stop() or
  // kill_now(). (Free of gtest: apdu_bench uses it too.)
  std::string start();
  // SIGTERM, and SIGKILL if it has not ended after 3 s.
  void stop();
  // SIGKILL at once: the daemon and its readers vanish mid-whatever.
  void kill_now();
  bool running() const { return pid_ > 0; }

  int port(int slot) const { return port_ + slot; }
  std::string reader(int slot) const;
  std::string log_tail() const;

 private:
  std::string start_once();
  void reap(int signal, int grace_ms);

  std::string friendly_;
  std::string dir_;  // conf dir and log
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace portier::drivers::pcsc_testing
