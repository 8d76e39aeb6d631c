// A server stream with a bounded queue: push() never blocks. When the client
// does not keep up, the queue fills and further messages are dropped and
// counted for this stream only; other streams are not affected. It queues
// `Item`s (the gateway's own event types, shared between streams) and turns
// each into the `Msg` it writes on the thread that writes it.
//
// The stream is written by the gRPC thread that serves the call (sync API):
// serve() waits for messages and writes each one itself, so a delivery costs
// one wake-up of that thread and no hand-off inside gRPC. A slow client
// blocks only its own thread in Write().
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

#include "subscriber.h"

namespace portier::gateway {

// grpc::Status of an error of the project's Result (common/result.h has the one mapping).
inline grpc::Status to_status(const Error& e) {
  return grpc::Status(static_cast<grpc::StatusCode>(grpc_status_code(e.code)), e.message());
}
inline grpc::Status to_status(const Result<void>& r) {
  return r ? grpc::Status::OK : to_status(r.error());
}

template <class Item, class Msg = Item>
class BoundedStream final : public Subscriber<Item> {
 public:
  using DoneFn = std::function<void(BoundedStream*)>;
  using ConvertFn = std::function<Msg(const Item&)>;
  // How often serve() looks whether the client cancelled while nothing is
  // written: the sync API does not tell a handler of a cancel, so a stream
  // cancelled on a live connection ends (and gives its stream slot back) up
  // to this long later. A disconnect is seen at once: the listener tells the
  // hub, which ends the connection's Subscribe and WatchDevices streams.
  static constexpr std::chrono::milliseconds kCancelPoll{200};

  static std::shared_ptr<BoundedStream> create(std::size_t capacity, ConvertFn convert = nullptr) {
    return std::shared_ptr<BoundedStream>(new BoundedStream(capacity, std::move(convert)));
  }

  // Called once, when serve() returns.
  void on_done(DoneFn fn) {
    std::lock_guard lock(mu_);
    done_fn_ = std::move(fn);
  }
  // Called just before a message goes out, with this stream's drop count.
  void on_send(std::function<void(Msg&, std::uint64_t dropped)> fn) { stamp_ = std::move(fn); }

  // Returns false when the message was dropped (queue full or stream ended).
  bool push(const Item& msg) { return push(std::make_shared<const Item>(msg)); }
  // The same message for many streams: each copies it on its own thread.
  bool push(std::shared_ptr<const Item> msg) override {
    {
      std::lock_guard lock(mu_);
      if (ending_) return false;
      if (queue_.size() >= capacity_) {
        ++dropped_;
        return false;
      }
      queue_.push_back(std::move(msg));
    }
    cv_.notify_one();
    return true;
  }

  void end(const Result<void>& why) override { end(to_status(why)); }
  SubscriberStats stats() const override { return {delivered(), dropped(), queued()}; }

  // Ends the stream with `status`. An OK end first delivers what is queued;
  // an error end drops it. A write in flight is finished first.
  void end(const grpc::Status& status) {
    {
      std::lock_guard lock(mu_);
      if (ending_) return;
      ending_ = true;
      if (!status.ok()) queue_.clear();
      status_ = status;
    }
    cv_.notify_one();
  }

  // Runs on the thread serving the call until the stream ends; returns the
  // status to finish the call with.
  grpc::Status serve(grpc::ServerContext* ctx, grpc::ServerWriter<Msg>* writer) {
    std::unique_lock lock(mu_);
    grpc::Status result;
    for (;;) {
      cv_.wait_for(lock, kCancelPoll, [this] { return !queue_.empty() || ending_; });
      if (!queue_.empty()) {
        auto item = std::move(queue_.front());
        queue_.pop_front();
        Msg msg = convert(*item);
        if (stamp_) stamp_(msg, dropped_);
        lock.unlock();
        const bool ok = writer->Write(msg);
        lock.lock();
        if (ok) {
          ++delivered_;
          continue;
        }
        result = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        break;
      }
      if (ending_) {
        result = status_;
        break;
      }
      if (ctx->IsCancelled()) {
        result = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
        break;
      }
    }
    ending_ = true;
    queue_.clear();
    DoneFn fn = std::move(done_fn_);
    lock.unlock();
    if (fn) fn(this);
    return result;
  }

  std::uint64_t delivered() const { return delivered_; }
  std::uint64_t dropped() const {
    std::lock_guard lock(mu_);
    return dropped_;
  }
  std::size_t queued() const {
    std::lock_guard lock(mu_);
    return queue_.size();
  }

 private:
  BoundedStream(std::size_t capacity, ConvertFn convert)
      : capacity_(capacity), convert_(std::move(convert)) {}

  Msg convert(const Item& item) const {
    if constexpr (std::is_same_v<Item, Msg>) {
      if (!convert_) return item;
    }
    return convert_(item);
  }

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  const ConvertFn convert_;
  std::deque<std::shared_ptr<const Item>> queue_;
  bool ending_ = false;  // no more pushes accepted
  grpc::Status status_;  // what end() asked for
  std::uint64_t dropped_ = 0;
  std::atomic<std::uint64_t> delivered_{0};
  DoneFn done_fn_;
  std::function<void(Msg&, std::uint64_t)> stamp_;
};

}  // namespace portier::gateway
