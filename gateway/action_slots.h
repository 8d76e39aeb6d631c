// At most N device actions (APDU exchange, pairing, a health run, ...) at
// once. An action runs on the gRPC thread serving its call and may block on
// hardware up to its own timeout; one stuck card occupies one thread and a
// slot, never another reader's exchange.
#pragma once

#include <cstddef>
#include <mutex>

namespace portier::gateway {

class ActionSlots {
 public:
  explicit ActionSlots(std::size_t max) : max_(max) {}
  ActionSlots(const ActionSlots&) = delete;
  ActionSlots& operator=(const ActionSlots&) = delete;

  // Holds a slot for its lifetime; false when all slots were taken.
  class Slot {
   public:
    explicit Slot(ActionSlots& s) : slots_(s), held_(s.take()) {}
    ~Slot() {
      if (held_) slots_.give_back();
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    explicit operator bool() const { return held_; }

   private:
    ActionSlots& slots_;
    const bool held_;
  };

 private:
  bool take() {
    std::lock_guard lock(mu_);
    if (used_ >= max_) return false;
    ++used_;
    return true;
  }
  void give_back() {
    std::lock_guard lock(mu_);
    --used_;
  }

  const std::size_t max_;
  std::mutex mu_;
  std::size_t used_ = 0;
};

}  // namespace portier::gateway
