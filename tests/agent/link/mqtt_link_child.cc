// A terminal's MQTT link in a process of its own, for the last-will tests:
// the test SIGKILLs it (the broker must publish the will) or asks it to stop
// cleanly (it must not).
//   mqtt_link_child URI FLEET TERMINAL CA CERT KEY WILL
// Prints "connected" when the link is up; "stop" on stdin stops the link
// cleanly, prints "stopped" and exits 0.
#include <iostream>
#include <string>

#include "agent/link/mqtt_link.h"

namespace {

struct Printer : portier::link::LinkHandler {
  void on_connected() override { std::cout << "connected" << std::endl; }
  void on_disconnected(const std::string&) override {}
  void on_acknowledgement(std::string) override {}
  void on_command(std::string) override {}
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::cerr << "usage: mqtt_link_child URI FLEET TERMINAL CA CERT KEY WILL\n";
    return 2;
  }
  portier::link::MqttLinkOptions o;
  o.server_uri = argv[1];
  o.fleet = argv[2];
  o.terminal_id = argv[3];
  o.tls = {argv[4], argv[5], argv[6]};
  o.will_payload = argv[7];
  o.backoff_min = std::chrono::milliseconds(50);
  o.backoff_max = std::chrono::milliseconds(400);
  auto link = portier::link::MqttLink::create(o);
  if (!link) {
    std::cerr << link.error().message() << "\n";
    return 1;
  }
  Printer printer;
  if (auto r = (*link)->start(printer); !r) {
    std::cerr << r.error().message() << "\n";
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line))
    if (line == "stop") break;
  (*link)->stop();
  std::cout << "stopped" << std::endl;
  return 0;
}
