// A SoftHSM2 token of the test's own: a temporary directory with its
// softhsm2.conf (SOFTHSM2_CONF is set for this process), a token labelled
// "portier" with user PIN 1234 and SO PIN 5678 made by softhsm2-util, and
// the PIN in a 0600 file.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/identity/pkcs11_signer.h"

namespace portier::test {

inline constexpr const char* kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";

struct SoftHsmToken {
  std::string dir;
  std::string pin_file;

  // An empty string on success, else what went wrong.
  std::string init(const std::string& parent) {
    dir = parent + "/softhsm";
    std::filesystem::create_directories(dir + "/tokens");
    std::ofstream(dir + "/softhsm2.conf")
        << "directories.tokendir = " << dir << "/tokens\nobjectstore.backend = file\n"
        << "log.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", (dir + "/softhsm2.conf").c_str(), 1);
    const std::string cmd =
        "softhsm2-util --init-token --free --label portier --pin 1234 --so-pin 5678 >/dev/null";
    if (std::system(cmd.c_str()) != 0) return "softhsm2-util --init-token failed";
    pin_file = dir + "/pin";
    std::ofstream(pin_file) << "1234\n";
    ::chmod(pin_file.c_str(), 0600);
    return {};
  }

  identity::Pkcs11Options options(const std::string& key_label,
                                  crypto::KeyType type = crypto::KeyType::ecdsa_p256) const {
    return {kSoftHsmModule, "portier", pin_file, key_label, type};
  }
};

}  // namespace portier::test
