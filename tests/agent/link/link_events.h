// What a LinkHandler was told, for tests to wait on (deadlines, no sleeps).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "agent/link/link.h"

namespace portier::link {

struct Events : LinkHandler {
  std::mutex mu;
  std::condition_variable cv;
  int connected = 0;
  std::vector<std::string> disconnected, commands;
  std::vector<std::string> acknowledgements;  // as received, unverified

  void on_connected() override {
    add([&] { ++connected; });
  }
  void on_disconnected(const std::string& r) override {
    add([&] { disconnected.push_back(r); });
  }
  void on_acknowledgement(std::string b) override {
    add([&] { acknowledgements.push_back(std::move(b)); });
  }
  void on_command(std::string b) override {
    add([&] { commands.push_back(std::move(b)); });
  }
  template <class F>
  void add(F f) {
    std::lock_guard lock(mu);
    f();
    cv.notify_all();
  }
  template <class P>
  bool wait(P pred, std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
};

}  // namespace portier::link
