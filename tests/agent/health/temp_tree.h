// A temporary directory tree for fixture files (/proc, /sys, baselines),
// unique per test process; removed at the end of the test.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace portier::health::testing {

class TempTree {
 public:
  TempTree() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "portier-health-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (!p) std::abort();
    root_ = p;
  }
  ~TempTree() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  const std::string& root() const { return root_; }
  std::string path(const std::string& rel) const { return root_ + "/" + rel; }
  // Writes a file (parents created) and returns its absolute path.
  std::string write(const std::string& rel, const std::string& content) const {
    auto p = path(rel);
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p;
  }
  std::string mkdir(const std::string& rel) const {
    auto p = path(rel);
    std::filesystem::create_directories(p);
    return p;
  }

 private:
  std::string root_;
};

}  // namespace portier::health::testing
