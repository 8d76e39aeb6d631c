#include "scan_subscribers.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

namespace portier::bench {
namespace {

// ---- one process, one completion queue ----

class OneProcess final : public SubscriberSet {
 public:
  ~OneProcess() override {
    std::string ignored;
    stop(&ignored);
  }

  bool start(const std::string& socket, int n, int count, std::string* error) override {
    realtime_offset_ = realtime_minus_mono();
    cq_ = std::make_unique<grpc::CompletionQueue>();
    v1::SubscribeRequest req;
    req.set_device_id(kScanDevice);
    for (int i = 0; i < n; ++i) {
      auto s = std::make_unique<Stream>();
      s->stub = connect(socket);
      s->rec = std::make_unique<Received>();
      s->rec->init(count);
      s->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(15));
      s->reader = s->stub->PrepareAsyncSubscribe(&s->ctx, req, cq_.get());
      streams_.push_back(std::move(s));
    }
    for (std::size_t i = 0; i < streams_.size(); ++i)
      streams_[i]->reader->StartCall(tag(i, kStarted));
    thread_ = std::thread([this] { loop(); });
    started_ = true;
    (void)error;
    return true;
  }

  bool all_done() override {
    return std::all_of(streams_.begin(), streams_.end(),
                       [](auto& s) { return s->rec->got_last.load() || s->ended.load(); });
  }

  std::int64_t cpu_ns() override { return proc_cpu_ns(getpid()); }

  std::vector<std::unique_ptr<Received>> stop(std::string* error) override {
    std::vector<std::unique_ptr<Received>> out;
    if (!started_) return out;
    started_ = false;
    for (auto& s : streams_) s->ctx.TryCancel();
    thread_.join();  // returns once every stream has finished
    cq_->Shutdown();
    void* t;
    bool ok;
    while (cq_->Next(&t, &ok)) {
    }
    for (auto& s : streams_) {
      if (!s->status.ok() && s->status.error_code() != grpc::StatusCode::CANCELLED) {
        *error = "a stream ended early: " + s->status.error_message();
      }
      out.push_back(std::move(s->rec));
    }
    streams_.clear();
    return out;
  }

 private:
  enum Op : std::uintptr_t { kStarted = 0, kRead = 1, kFinished = 2 };
  struct Stream {
    std::unique_ptr<v1::Gateway::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReader<v1::PeripheralEvent>> reader;
    v1::PeripheralEvent ev;
    std::unique_ptr<Received> rec;
    grpc::Status status;
    std::atomic<bool> ended{false};
  };
  static void* tag(std::size_t i, Op op) { return reinterpret_cast<void*>(i * 4 + op); }

  void loop() {
    std::size_t finished = 0;
    void* t;
    bool ok;
    while (finished < streams_.size() && cq_->Next(&t, &ok)) {
      const std::int64_t now = mono_ns();
      auto v = reinterpret_cast<std::uintptr_t>(t);
      Stream& s = *streams_[v / 4];
      switch (static_cast<Op>(v % 4)) {
        case kStarted:
        case kRead:
          if (static_cast<Op>(v % 4) == kRead && ok)
            s.rec->record_event(s.ev, now, realtime_offset_);
          if (ok) {
            s.reader->Read(&s.ev, tag(v / 4, kRead));
          } else {
            s.reader->Finish(&s.status, tag(v / 4, kFinished));
          }
          break;
        case kFinished:
          s.ended = true;
          ++finished;
          break;
      }
    }
  }

  std::unique_ptr<grpc::CompletionQueue> cq_;  // a fresh one for every run
  std::vector<std::unique_ptr<Stream>> streams_;
  std::thread thread_;
  std::int64_t realtime_offset_ = 0;
  bool started_ = false;
};

// ---- one process per subscriber ----

class Processes final : public SubscriberSet {
 public:
  explicit Processes(const TempDir& dir) : dir_(dir) {}
  ~Processes() override {
    for (auto& c : children_) c->stop(SIGKILL, std::chrono::milliseconds(2000));
  }

  bool start(const std::string& socket, int n, int count, std::string* error) override {
    const std::string tag = std::to_string(++runs_);
    for (int i = 0; i < n; ++i) {
      outs_.push_back(dir_.file("sub-" + tag + "-" + std::to_string(i) + ".txt"));
      children_.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
          self_exe(), "--subscriber-child", socket, std::to_string(count), outs_.back()}));
      if (!children_.back()->start()) {
        *error = "cannot start a subscriber process";
        return false;
      }
    }
    return true;
  }

  // A child writes its file when it has read the last frame.
  bool all_done() override {
    return std::all_of(outs_.begin(), outs_.end(),
                       [](auto& f) { return std::filesystem::exists(f); });
  }

  std::int64_t cpu_ns() override {
    std::int64_t sum = 0;
    for (auto& c : children_) sum += std::max<std::int64_t>(0, proc_cpu_ns(c->pid()));
    return sum;
  }

  std::vector<std::unique_ptr<Received>> stop(std::string* error) override {
    std::vector<std::unique_ptr<Received>> out;
    for (std::size_t i = 0; i < children_.size(); ++i) {
      int rc = children_[i]->stop(SIGTERM, std::chrono::milliseconds(5000));
      auto rec = std::make_unique<Received>();
      if (rc != 0 || !rec->read_from(outs_[i])) {
        *error = "subscriber " + std::to_string(i + 1) + " failed (exit " + std::to_string(rc) +
                 "): " + children_[i]->log();
      }
      out.push_back(std::move(rec));
    }
    children_.clear();
    outs_.clear();
    return out;
  }

 private:
  const TempDir& dir_;
  int runs_ = 0;
  std::vector<std::unique_ptr<ChildProcess>> children_;
  std::vector<std::string> outs_;
};

}  // namespace

std::unique_ptr<SubscriberSet> one_process_subscribers() { return std::make_unique<OneProcess>(); }

std::unique_ptr<SubscriberSet> process_subscribers(const TempDir& dir) {
  return std::make_unique<Processes>(dir);
}

int run_subscriber_child(const std::string& socket, int count, const std::string& out) {
  install_stop_signals();
  Received rec;
  rec.init(count);
  const std::int64_t realtime_offset = realtime_minus_mono();
  auto stub = connect(socket);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(15));
  std::atomic<bool> ended{false};
  // SIGTERM from the parent ends the stream.
  std::thread watcher([&] {
    while (!ended && !stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ctx.TryCancel();
  });
  v1::SubscribeRequest req;
  req.set_device_id(kScanDevice);
  auto reader = stub->Subscribe(&ctx, req);
  v1::PeripheralEvent ev;
  bool written = false;
  while (reader->Read(&ev)) {
    rec.record_event(ev, mono_ns(), realtime_offset);
    if (rec.got_last && !written) written = rec.write_to(out);
  }
  auto status = reader->Finish();
  ended = true;
  watcher.join();
  if (!written && !rec.write_to(out)) {
    std::fprintf(stderr, "subscriber: cannot write %s\n", out.c_str());
    return 1;
  }
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    std::fprintf(stderr, "subscriber: stream ended: %s\n", status.error_message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace portier::bench
