// Test helpers for agent/attest: a per-test swtpm and builders of fixture
// firmware event logs and IMA logs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/attest/digest.h"
#include "agent/attest/tpm_client.h"

namespace portier::attest::testing {

// swtpm on kernel-assigned free ports (listening sockets made here and handed
// to swtpm with fd=, so there is no port race and no wait for readiness), its
// state in a fresh temp dir; killed (and reaped) in the destructor; dies with
// the test process (PR_SET_PDEATHSIG).
class Swtpm {
 public:
  static bool installed();
  Swtpm();
  ~Swtpm();
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;
  bool running() const { return pid_ > 0; }
  const std::string& error() const { return error_; }
  std::string tcti() const;
  TpmConfig config(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) const;
  void stop_process();  // SIGSTOP: the TPM stops answering
  void continue_process();

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
  std::string error_;
};

// A port on 127.0.0.1 with nothing listening.
int closed_port();

// Builds a crypto-agile firmware event log (sha1 + sha256) and remembers the
// digests each event extends, to replay them into a TPM.
class EventLogBuilder {
 public:
  EventLogBuilder();
  // Adds an event whose digests are H(data) for each bank.
  void add(std::uint32_t pcr, std::uint32_t type, const std::string& data);
  void add_no_action(const std::string& data);
  const std::string& bytes() const { return bytes_; }
  struct Extend {
    std::uint32_t pcr;
    std::map<std::uint16_t, Bytes> digests;
  };
  const std::vector<Extend>& extends() const { return extends_; }
  // Offset of the n-th event after the header.
  std::size_t event_offset(std::size_t n) const { return offsets_.at(n); }

 private:
  std::string bytes_;
  std::vector<Extend> extends_;
  std::vector<std::size_t> offsets_;
};

void put_u16(std::string& s, std::uint16_t v);
void put_u32(std::string& s, std::uint32_t v);
std::string bytes_str(const Bytes& b);

// A well-formed ima-ng line for `path` with the file digest sha256(content),
// and the digests to extend into PCR 10 (sha1 template hash, sha256 of the
// template data).
struct ImaLine {
  std::string text;
  std::map<std::uint16_t, Bytes> digests;
};
ImaLine ima_ng_line(const std::string& path, const std::string& content);

std::string write_temp_file(const std::string& name, const std::string& content);

}  // namespace portier::attest::testing
