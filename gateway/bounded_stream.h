// A server stream with a bounded queue: push() never blocks. When the client
// does not keep up, the queue fills and further messages are dropped and
// counted for this stream only; other streams are not affected.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace portier::gateway {

template <class Msg>
class BoundedStream : public grpc::ServerWriteReactor<Msg> {
 public:
  using DoneFn = std::function<void(BoundedStream*)>;

  // Streams are owned by themselves until gRPC calls OnDone.
  static std::shared_ptr<BoundedStream> create(std::size_t capacity) {
    auto s = std::shared_ptr<BoundedStream>(new BoundedStream(capacity));
    s->self_ = s;
    return s;
  }
  // A stream that ends at once with `status` (used for refusals).
  static BoundedStream* refused(const grpc::Status& status) {
    auto s = create(1);
    s->end(status);
    return s.get();
  }

  void on_done(DoneFn fn) {
    std::lock_guard lock(mu_);
    done_fn_ = std::move(fn);
  }
  // Called just before a message goes out, with this stream's drop count.
  void on_send(std::function<void(Msg&, std::uint64_t dropped)> fn) { stamp_ = std::move(fn); }

  // Returns false when the message was dropped (queue full or stream ended).
  bool push(const Msg& msg) {
    std::unique_lock lock(mu_);
    if (ending_) return false;
    if (writing_) {
      if (queue_.size() >= capacity_) {
        ++dropped_;
        return false;
      }
      queue_.push_back(msg);
      return true;
    }
    writing_ = true;
    current_ = msg;
    if (stamp_) stamp_(current_, dropped_);
    lock.unlock();
    this->StartWrite(&current_);
    return true;
  }

  // Ends the stream with `status`. An OK end first delivers what is queued;
  // an error end drops it. Either waits for the write in flight.
  void end(const grpc::Status& status) {
    std::unique_lock lock(mu_);
    if (ending_) return;
    ending_ = true;
    if (!status.ok()) queue_.clear();
    if (writing_) {
      pending_status_ = status;
      return;
    }
    finished_ = true;
    lock.unlock();
    this->Finish(status);
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
  explicit BoundedStream(std::size_t capacity) : capacity_(capacity) {}

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    if (ok) {
      ++delivered_;
    } else {
      ending_ = true;  // the client is gone: nothing more can be written
      queue_.clear();
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      if (stamp_) stamp_(current_, dropped_);
      lock.unlock();
      this->StartWrite(&current_);
      return;
    }
    writing_ = false;
    if ((!ok || pending_status_) && !finished_) {
      finished_ = true;
      auto st = pending_status_ ? *pending_status_
                                : grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      lock.unlock();
      this->Finish(st);
    }
  }

  void OnCancel() override { end(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")); }

  void OnDone() override {
    DoneFn fn;
    {
      std::lock_guard lock(mu_);
      ending_ = true;
      fn = std::move(done_fn_);
    }
    if (fn) fn(this);
    self_.reset();  // may delete this
  }

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::deque<Msg> queue_;
  Msg current_;
  bool writing_ = false;
  bool ending_ = false;    // no more pushes accepted
  bool finished_ = false;  // Finish has been called
  std::optional<grpc::Status> pending_status_;
  std::uint64_t dropped_ = 0;
  std::atomic<std::uint64_t> delivered_{0};
  DoneFn done_fn_;
  std::function<void(Msg&, std::uint64_t)> stamp_;
  std::shared_ptr<BoundedStream> self_;
};

}  // namespace portier::gateway
