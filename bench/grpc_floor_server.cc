#include "grpc_floor_server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <list>
#include <memory>
#include <mutex>

#include "daemon_launcher.h"
#include "portier/v1/gateway.grpc.pb.h"
#include "scan_receiver.h"

namespace portier::bench {
namespace {

using Event = std::shared_ptr<const v1::PeripheralEvent>;

struct Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> queue;
};

class Floor final : public v1::Gateway::Service {
 public:
  grpc::Status Subscribe(grpc::ServerContext* ctx, const v1::SubscribeRequest*,
                         grpc::ServerWriter<v1::PeripheralEvent>* writer) override {
    auto s = std::make_shared<Stream>();
    {
      std::lock_guard lock(mu_);
      streams_.push_back(s);
    }
    for (;;) {
      std::unique_lock lock(s->mu);
      if (!s->cv.wait_for(lock, std::chrono::milliseconds(200),
                          [&] { return !s->queue.empty(); })) {
        if (ctx->IsCancelled()) break;
        continue;
      }
      Event e = std::move(s->queue.front());
      s->queue.pop_front();
      lock.unlock();
      if (!writer->Write(*e)) break;
    }
    std::lock_guard lock(mu_);
    streams_.remove(s);
    return grpc::Status::OK;
  }

  grpc::Status GetHealth(grpc::ServerContext*, const v1::GetHealthRequest*,
                         v1::Health* resp) override {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < streams_.size(); ++i) {
      resp->add_subscribers()->set_device_id(kScanDevice);
    }
    return grpc::Status::OK;
  }

  void fan_out(Event e) {
    std::lock_guard lock(mu_);
    for (auto& s : streams_) {
      {
        std::lock_guard sl(s->mu);
        s->queue.push_back(e);
      }
      s->cv.notify_one();
    }
  }

 private:
  std::mutex mu_;
  std::list<std::shared_ptr<Stream>> streams_;
};

}  // namespace

int run_floor_server(const std::string& socket, const std::string& pty) {
  install_stop_signals();
  int fd = open(pty.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    std::perror("floor server: open pty");
    return 1;
  }
  termios t{};
  tcgetattr(fd, &t);
  cfmakeraw(&t);
  tcsetattr(fd, TCSANOW, &t);
  Floor service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "floor server: cannot listen on %s\n", socket.c_str());
    return 1;
  }
  std::fprintf(stderr, "floor server ready\n");
  std::string pending;
  std::uint64_t seq = 0;
  char buf[4096];
  while (!stop_requested()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) continue;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0, cr;
    while ((cr = pending.find('\r', start)) != std::string::npos) {
      auto e = std::make_shared<v1::PeripheralEvent>();
      e->set_device_id(kScanDevice);
      e->set_sequence(++seq);
      auto now = std::chrono::system_clock::now().time_since_epoch();
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
      e->mutable_time()->set_seconds(ns / 1000000000);
      e->mutable_time()->set_nanos(static_cast<int>(ns % 1000000000));
      e->mutable_scan()->set_raw(pending.substr(start, cr - start));
      service.fan_out(std::move(e));
      start = cr + 1;
    }
    pending.erase(0, start);
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  close(fd);
  return 0;
}

}  // namespace portier::bench
