// Reads the report fixtures of tests/data/hid/: one report per line as
// whitespace-separated hex bytes; lines starting with '#' are comments.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace portier::drivers::testing {

inline std::vector<std::string> load_hex_reports(const std::string& name) {
  const std::string path = std::string(PORTIER_TEST_DATA) + "/hid/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open fixture " + path);
  std::vector<std::string> reports;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string report, word;
    while (words >> word) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(word.c_str(), &end, 16);
      if (*end != '\0' || word.size() != 2 || v > 0xff) {
        throw std::runtime_error("bad hex byte '" + word + "' in " + path);
      }
      report.push_back(static_cast<char>(v));
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

inline std::string concat(const std::vector<std::string>& parts) {
  std::string all;
  for (const auto& p : parts) all += p;
  return all;
}

}  // namespace portier::drivers::testing
