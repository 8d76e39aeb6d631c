// Something that receives a stream of events from the gateway: a gRPC
// stream to an app is one kind (BoundedStream), an in-process listener of an
// agent feature another (QueueSubscriber). The fan-out (fan_out.h) pushes to
// subscribers without knowing which kind they are.
#pragma once

#include <cstdint>
#include <memory>

#include "common/result.h"

namespace portier::gateway {

struct SubscriberStats {
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
  std::size_t queued = 0;
};

template <class Event>
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Never blocks. False when the event was dropped (its queue is full, or
  // the subscription ended); a full queue counts the drop.
  virtual bool push(std::shared_ptr<const Event> event) = 0;
  // Ends the subscription: a success first delivers what is queued, an
  // error drops it and is what the subscriber is told.
  virtual void end(const Result<void>& why) = 0;
  virtual SubscriberStats stats() const = 0;
};

}  // namespace portier::gateway
