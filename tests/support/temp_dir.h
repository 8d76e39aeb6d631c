// A fresh directory per test (mkdtemp under $TMPDIR, else /tmp), removed
// with everything in it when the test ends, so tests run in parallel without
// sharing files. Header-only: every test target has tests/ on its include
// path, whatever it links.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace portier::test_support {

class TempDir {
 public:
  // `prefix` names the directory (prefix-XXXXXX); `mode` is set on it
  // (mkdtemp makes 0700; a test whose other uids must reach a socket in it
  // asks for 0755).
  explicit TempDir(std::string_view prefix = "portier-test", mode_t mode = 0700) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base && *base ? base : "/tmp") + "/" + std::string(prefix) + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed for " + tmpl);
    }
    path_ = tmpl;
    if (mode != 0700 && ::chmod(path_.c_str(), mode) != 0) {
      throw std::runtime_error("chmod failed for " + path_);
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Writes `name` with `content` and sets its mode exactly (umask aside).
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0644) const {
    const std::string p = file(name);
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << content;
      if (!out) throw std::runtime_error("cannot write " + p);
    }
    if (::chmod(p.c_str(), mode) != 0) throw std::runtime_error("chmod failed for " + p);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace portier::test_support
