// A card for one vpcd slot. vpcd listens on a TCP port per slot; a card is
// "inserted" when a program connects to it and "removed" when it hangs up.
// Messages both ways: a 2-byte big-endian length, then the body. A 1-byte
// body from vpcd is a control code (0 power off, 1 power on, 2 reset, 4 get
// ATR; only 4 is answered, with the ATR); a longer body is a C-APDU, to be
// answered with an R-APDU.
//
// What this card answers:
//   00 A4 .. (SELECT)          90 00
//   80 CA .. with data (echo)  the command data, 90 00
//   FF CA 00 00 00 (GET UID)   the UID, 90 00 (6A 81 when it has none)
//   80 E0 (stuck)              nothing, ever: a card that hangs
//   80 E1 (hang up)            drops the connection: pulled out mid-APDU
//   anything else              6D 00
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>

namespace portier::drivers::pcsc_testing {

inline const std::string kStuckApdu("\x80\xE0\x00\x00", 4);
inline const std::string kHangUpApdu("\x80\xE1\x00\x00", 4);

class VirtualCard {
 public:
  VirtualCard(int port, std::string atr, std::string uid = {});
  ~VirtualCard();  // removes the card
  VirtualCard(const VirtualCard&) = delete;
  VirtualCard& operator=(const VirtualCard&) = delete;

  // Connects to vpcd and answers it on a thread of its own: "" then, else
  // why not. (Free of gtest: apdu_bench uses it too.)
  std::string insert();
  // Hangs up (idempotent).
  void remove();

  // C-APDUs received so far (control codes not counted).
  std::size_t apdus() const;
  std::size_t resets() const;
  // Waits until the stuck command arrived.
  bool wait_stuck(std::chrono::milliseconds timeout);
  // Waits until the card hung up by itself (after kHangUpApdu or vpcd
  // closing the connection).
  bool wait_hung_up(std::chrono::milliseconds timeout);

 private:
  void serve();
  std::string answer(const std::string& apdu, bool& hang_up, bool& stuck);
  void note(bool stuck, bool hung_up);

  const int port_;
  const std::string atr_;
  const std::string uid_;
  int fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t apdus_ = 0;
  std::size_t resets_ = 0;
  bool stuck_ = false;
  bool hung_up_ = false;
};

}  // namespace portier::drivers::pcsc_testing
