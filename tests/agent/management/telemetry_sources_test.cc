// The telemetry sources' audit stream under back-pressure: far more audit
// records are written at once than the sources queue in memory, and the
// uplink behind them holds only a few payloads. None is lost or sent twice:
// the sources stop taking lines and read them back from the trail by
// number once there is room. A real outbox file and uplink; the trail is a
// double that keeps every line (as the files do) but only a short memory
// tail.
#include "agent/management/telemetry_sources.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "agent/audit_verify.h"
#include "portier/v1/telemetry.pb.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

class FileLikeTrail final : public AuditSink {
 public:
  void record(const AuditEntry&) override {}
  // Like AuditLog's memory tail: only the last few lines.
  std::vector<std::string> tail(std::size_t count) override {
    std::lock_guard lock(mu_);
    const auto n = std::min({count, lines_.size(), std::size_t{5}});
    return {lines_.end() - static_cast<std::ptrdiff_t>(n), lines_.end()};
  }
  int follow(std::function<void(const std::string&)> fn) override {
    std::lock_guard lock(mu_);
    follower_ = std::move(fn);
    return 1;
  }
  void unfollow(int) override {
    std::lock_guard lock(mu_);
    follower_ = nullptr;
  }
  // A record written and on disk: the follower hears of it.
  void write() {
    std::function<void(const std::string&)> f;
    std::string line;
    {
      std::lock_guard lock(mu_);
      line = "{\"seq\":" + std::to_string(lines_.size() + 1) + ",\"prev\":\"" +
             std::string(64, '0') + "\",\"time\":\"t\",\"event\":\"alarm\"}";
      lines_.push_back(line);
      f = follower_;
    }
    if (f) f(line);
  }
  // What DaemonControl::audit_range reads from the files.
  Result<std::vector<std::string>> range(std::uint64_t first, std::uint64_t last) {
    std::lock_guard lock(mu_);
    ++reads_;
    std::vector<std::string> out;
    for (auto s = first; s <= last && s <= lines_.size(); ++s) out.push_back(lines_[s - 1]);
    if (out.empty()) return fail_msg(Errc::not_found, "none of them");
    return out;
  }
  int reads() {
    std::lock_guard lock(mu_);
    return reads_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::function<void(const std::string&)> follower_;
  int reads_ = 0;
};

TEST(TelemetrySourcesAudit, RecordsBeyondTheQueueAreReadBackFromTheTrailNotDropped_REQ29) {
  char t[] = "/tmp/portier-sources-XXXXXX";
  const std::string dir = mkdtemp(t);
  {
    auto key = crypto::PrivateKey::generate(crypto::KeyType::ed25519);
    ASSERT_TRUE(key);
    auto signer = crypto::KeySigner::from(*key);
    ASSERT_TRUE(signer);
    auto box = outbox::Outbox::open({dir + "/outbox.db", 64u << 20, 24h});
    ASSERT_TRUE(box) << box.error().message();
    UplinkOptions uo;
    uo.max_queued = 2;  // the uplink pushes back too
    uo.max_run = 2;
    Uplink uplink(**box, envelope::EnvelopeSealer("T-1", signer->type(), *(*box)->chain_state()),
                  *signer, *envelope::key_id(signer->public_key()), uo);
    uplink.start();
    FileLikeTrail trail;
    TelemetryIntervals ti;
    ti.audit_flush = 10ms;
    ti.audit_batch = 7;
    ti.max_audit_queued = 10;
    std::mutex mu;
    std::uint64_t saved = 0;
    TelemetrySources sources(nullptr, &trail, uplink, BirthInfo{}, ti, 0, [&](std::uint64_t c) {
      std::lock_guard lock(mu);
      saved = c;
    });
    sources.set_audit_reader(
        [&](std::uint64_t first, std::uint64_t last) { return trail.range(first, last); });
    sources.start();
    for (int i = 0; i < 1000; ++i) trail.write();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    auto committed = [&] {
      std::lock_guard lock(mu);
      return saved;
    };
    while (committed() < 1000 && std::chrono::steady_clock::now() < deadline) {
      uplink.flush(50ms);
    }
    sources.stop();
    uplink.stop();
    EXPECT_EQ(committed(), 1000u);
    EXPECT_GT(trail.reads(), 0) << "the queue never overflowed: the test proves nothing";
    // Every record in the outbox once, in order.
    std::vector<std::uint64_t> sent;
    auto records = (*box)->oldest(100000);
    ASSERT_TRUE(records);
    for (auto& r : *records) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      ASSERT_TRUE(env.ParseFromString(r.envelope) && body.ParseFromString(env.body()));
      if (body.payload_type() != v1::PAYLOAD_AUDIT) continue;
      v1::AuditBatch batch;
      ASSERT_TRUE(batch.ParseFromString(body.payload()));
      for (auto& l : batch.records()) sent.push_back(agent::parse_chained_line(l)->seq);
    }
    ASSERT_EQ(sent.size(), 1000u);
    for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sent[i], i + 1);
  }
  std::filesystem::remove_all(dir);
}

// Regression (f6d9e82): while a key rotation held the uplink, every audit
// batch (up to 256 KiB) went into the uplink's memory queue, which only
// counts payloads, and stop() waited 5 s for each. Now the lines wait in
// the trail: nothing is queued while held, and after the release they all
// go out, once, in order.
TEST(TelemetrySourcesAudit, AuditLinesWaitInTheTrailWhileTheUplinkIsHeld_REQ33) {
  char t[] = "/tmp/portier-sources-held-XXXXXX";
  const std::string dir = mkdtemp(t);
  {
    auto key = crypto::PrivateKey::generate(crypto::KeyType::ed25519);
    ASSERT_TRUE(key);
    auto signer = crypto::KeySigner::from(*key);
    ASSERT_TRUE(signer);
    auto box = outbox::Outbox::open({dir + "/outbox.db", 64u << 20, 24h});
    ASSERT_TRUE(box) << box.error().message();
    Uplink uplink(**box, envelope::EnvelopeSealer("T-1", signer->type(), *(*box)->chain_state()),
                  *signer, *envelope::key_id(signer->public_key()), UplinkOptions{});
    uplink.start();
    auto held = uplink.hold(5s);
    ASSERT_TRUE(held) << held.error().message();
    FileLikeTrail trail;
    TelemetryIntervals ti;
    ti.audit_flush = 10ms;
    ti.audit_batch = 7;
    ti.max_audit_queued = 10;
    std::mutex mu;
    std::uint64_t saved = 0;
    int rounds = 0;  // the sources' loop, counted by its housekeeping
    std::condition_variable cv;
    TelemetrySources sources(nullptr, &trail, uplink, BirthInfo{}, ti, 0, [&](std::uint64_t c) {
      std::lock_guard lock(mu);
      saved = c;
    });
    sources.set_audit_reader(
        [&](std::uint64_t first, std::uint64_t last) { return trail.range(first, last); });
    sources.set_housekeeping(
        [&] {
          {
            std::lock_guard lock(mu);
            ++rounds;
          }
          cv.notify_all();
        },
        10ms);
    sources.start();
    const auto birth = uplink.stats().queued;  // the sources' birth, queued at start
    EXPECT_EQ(birth, 1u);
    for (int i = 0; i < 100; ++i) trail.write();
    {
      // Many rounds with audit lines due (the flush interval is the
      // housekeeping's): each would have queued a batch before (or stop
      // early when one is queued).
      std::unique_lock lock(mu);
      const int from = rounds;
      const auto until = std::chrono::steady_clock::now() + 60s;
      while (rounds < from + 30 && uplink.stats().queued == birth &&
             std::chrono::steady_clock::now() < until) {
        cv.wait_for(lock, 10ms);
      }
    }
    EXPECT_EQ(uplink.stats().queued, birth) << "audit batches queued while held";
    {
      std::lock_guard lock(mu);
      EXPECT_EQ(saved, 0u) << "the cursor passed lines that were not committed";
    }
    auto none = (*box)->oldest(100000);
    ASSERT_TRUE(none);
    const auto before_release = none->size();

    uplink.release();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    auto committed = [&] {
      std::lock_guard lock(mu);
      return saved;
    };
    while (committed() < 100 && std::chrono::steady_clock::now() < deadline) {
      uplink.flush(50ms);
    }
    const auto stop_began = std::chrono::steady_clock::now();
    sources.stop();
    uplink.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - stop_began, 5s);
    EXPECT_EQ(committed(), 100u);
    std::vector<std::uint64_t> sent;
    auto records = (*box)->oldest(100000);
    ASSERT_TRUE(records);
    EXPECT_GT(records->size(), before_release);
    for (auto& r : *records) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      ASSERT_TRUE(env.ParseFromString(r.envelope) && body.ParseFromString(env.body()));
      if (body.payload_type() != v1::PAYLOAD_AUDIT) continue;
      v1::AuditBatch batch;
      ASSERT_TRUE(batch.ParseFromString(body.payload()));
      for (auto& l : batch.records()) sent.push_back(agent::parse_chained_line(l)->seq);
    }
    ASSERT_EQ(sent.size(), 100u);
    for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sent[i], i + 1);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace portier::management
