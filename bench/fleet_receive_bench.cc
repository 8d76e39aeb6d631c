// fleet_receive_bench: how fast portier-fleet's receiver stores what
// terminals send (issue 10, item 8), per algorithm and signing mode: N
// envelopes of B payload bytes, sealed and signed as a terminal does (each
// signed, or in batch mode the last of every 256; each a HealthReport), handed to
// Receiver::receive_message into a fresh SQLite store (WAL,
// synchronous=FULL) on this machine's disk:
//   - one envelope per message (what a terminal sent before runs), and
//   - runs as the terminal's OutboxSender makes them (up to 256 envelopes or
//     about 64 KiB per message): one transaction per run.
// Verification (one signature check per signed envelope, the chain digest
// of every body) and the store are both in the figure; no network.
//   - a hostile broker's flood (`forged`): unsigned envelopes chained to the
//     terminal's head, one per message, into a room of candidates already
//     full (4,096, each one then evicts the oldest), printed beside the
//     honest one-envelope-per-message rate as a ratio (what a forged
//     message costs the receiver, against a genuine one).
//
// usage: fleet_receive_bench [--envelopes N] [--single N] [--payload-bytes B]
//                            [--alg ecdsa-p256|ed25519|sm2]...
#include <chrono>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/envelope/envelope_chain.h"
#include "daemon_launcher.h"
#include "portier/v1/envelope.pb.h"
#include "portier/v1/telemetry.pb.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace {

using namespace portier;
using namespace portier::bench;

struct Options {
  int envelopes = 20000;
  int single = 2000;
  int payload_bytes = 200;
  std::vector<crypto::KeyType> algs;
};

// A terminal's envelopes, serialized, in sequence order.
std::vector<std::string> make_envelopes(const crypto::PrivateKey& key, int n, int payload_bytes,
                                        bool batch) {
  envelope::EnvelopeSealer sealer("T-bench", key.type(), {});
  std::mt19937 rng(7);
  // A health report whose reason holds `payload_bytes` random letters.
  std::string reason(static_cast<std::size_t>(payload_bytes), 'a');
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    for (auto& c : reason) c = static_cast<char>('a' + rng() % 26);
    v1::HealthReport h;
    h.mutable_health()->set_state(v1::Health::OK);
    h.mutable_health()->add_reasons(reason);
    auto s =
        sealer.seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), std::chrono::system_clock::now());
    if (!s) throw std::runtime_error("seal: " + s.error().message());
    if (!batch || i % 256 == 255 || i + 1 == n) {
      if (auto ok = envelope::sign_envelope(s->envelope, key); !ok) {
        throw std::runtime_error("sign: " + ok.error().message());
      }
    }
    out.push_back(s->envelope.SerializeAsString());
  }
  return out;
}

// As OutboxSender cuts them: up to 256 envelopes or about 64 KiB.
std::vector<std::string> make_runs(const std::vector<std::string>& envelopes) {
  std::vector<std::string> runs;
  v1::EnvelopeRun run;
  std::size_t bytes = 0;
  for (const auto& e : envelopes) {
    if (run.envelopes_size() > 0 && (run.envelopes_size() == 256 || bytes + e.size() > 65536)) {
      runs.push_back(run.SerializeAsString());
      run.Clear();
      bytes = 0;
    }
    run.add_envelopes(e);
    bytes += e.size();
  }
  if (run.envelopes_size() > 0) runs.push_back(run.SerializeAsString());
  return runs;
}

// Envelopes stored per second, all `messages` through one receiver.
double receive(const std::string& db, const crypto::PrivateKey& key, const std::string& kind,
               const std::vector<std::string>& messages, std::size_t envelopes) {
  auto store = fleet::SqliteFleetStore::open(db);
  if (!store) throw std::runtime_error("store: " + store.error().message());
  fleet::Terminal t;
  t.id = "T-bench";
  t.public_key_pem = *key.public_key()->to_pem();
  t.key_algorithm = std::string(crypto::name(key.type()));
  t.registered = std::chrono::system_clock::now();
  if (auto ok = (*store)->add_terminal(t); !ok) throw std::runtime_error(ok.error().message());
  fleet::Receiver rx(**store);
  std::size_t acknowledged = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& m : messages) {
    if (stop_requested()) throw std::runtime_error("interrupted");
    auto in = rx.receive_message("T-bench", kind, m, std::chrono::system_clock::now());
    if (!in.refused.empty()) throw std::runtime_error(in.refused.front().message());
    acknowledged += in.acknowledge.size();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (acknowledged != envelopes) {
    throw std::runtime_error("acknowledged " + std::to_string(acknowledged) + " of " +
                             std::to_string(envelopes));
  }
  return envelopes / s;
}

// Forged candidates refused or held per second for a registered terminal
// whose room of candidates is full (`fill` of them first, in groups): each
// timed one is held and evicts the oldest.
double forged_flood(const std::string& db, const crypto::PrivateKey& key, int fill, int n,
                    int payload_bytes) {
  auto store = fleet::SqliteFleetStore::open(db);
  if (!store) throw std::runtime_error("store: " + store.error().message());
  fleet::Terminal t;
  t.id = "T-bench";
  t.public_key_pem = *key.public_key()->to_pem();
  t.key_algorithm = std::string(crypto::name(key.type()));
  t.registered = std::chrono::system_clock::now();
  if (auto ok = (*store)->add_terminal(t); !ok) throw std::runtime_error(ok.error().message());
  fleet::Receiver rx(**store);
  // The terminal's head: its first envelope, signed and stored.
  envelope::EnvelopeSealer genuine("T-bench", key.type(), {});
  auto first = genuine.seal(v1::PAYLOAD_HEALTH, "", std::chrono::system_clock::now());
  if (!first || !envelope::sign_envelope(first->envelope, key)) {
    throw std::runtime_error("the genuine envelope could not be sealed");
  }
  auto in = rx.receive_message("T-bench", "envelope", first->envelope.SerializeAsString(),
                               std::chrono::system_clock::now());
  if (in.acknowledge.size() != 1) throw std::runtime_error("the genuine envelope was not stored");
  std::mt19937 rng(11);
  std::string reason(static_cast<std::size_t>(payload_bytes), 'a');
  auto forged = [&] {
    envelope::EnvelopeSealer forger("T-bench", key.type(), genuine.state());
    for (auto& c : reason) c = static_cast<char>('a' + rng() % 26);
    v1::HealthReport h;
    h.mutable_health()->add_reasons(reason);
    auto s =
        forger.seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), std::chrono::system_clock::now());
    if (!s) throw std::runtime_error("seal: " + s.error().message());
    return s->envelope.SerializeAsString();
  };
  for (int done = 0; done < fill;) {
    std::vector<fleet::Receiver::Message> group;
    for (; done < fill && group.size() < 256; ++done) group.push_back({"envelope", forged()});
    for (auto& r : rx.receive_many("T-bench", group, std::chrono::system_clock::now())) {
      if (!r) throw std::runtime_error("fill: " + r.error().message());
    }
  }
  std::vector<std::string> messages;
  for (int i = 0; i < n; ++i) messages.push_back(forged());
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& m : messages) {
    if (stop_requested()) throw std::runtime_error("interrupted");
    auto r = rx.receive("T-bench", "envelope", m, std::chrono::system_clock::now());
    if (!r || r->outcome != fleet::Receipt::Outcome::held) {
      throw std::runtime_error("a forged candidate was not held: " +
                               (r ? std::string(fleet::name(r->outcome)) : r.error().message()));
    }
  }
  return n / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Options& o) {
  TempDir dir;
  std::printf(
      "fleet_receive_bench: %d envelopes of %d payload bytes per case (runs), %d (one "
      "per message)\nstore in %s\n\n",
      o.envelopes, o.payload_bytes, o.single, dir.path().c_str());
  std::printf("%-10s %-5s %-22s %10s %12s\n", "alg", "mode", "messages", "count", "envelopes/s");
  int n = 0;
  for (auto alg : o.algs) {
    auto key = crypto::PrivateKey::generate(alg);
    if (!key) throw std::runtime_error("key: " + key.error().message());
    const std::string name(crypto::name(alg));
    for (bool batch : {false, true}) {
      const auto envelopes = make_envelopes(*key, o.envelopes, o.payload_bytes, batch);
      const auto runs = make_runs(envelopes);
      const double r = receive(dir.file("fleet-" + std::to_string(n++) + ".db"), *key, "run", runs,
                               envelopes.size());
      std::printf("%-10s %-5s %-22s %10zu %12.0f\n", name.c_str(), batch ? "batch" : "each",
                  "runs (one transaction)", runs.size(), r);
      const std::vector<std::string> singles(
          envelopes.begin(),
          envelopes.begin() +
              std::min<std::size_t>(envelopes.size(), static_cast<std::size_t>(o.single)));
      if (!batch) {
        const double s = receive(dir.file("fleet-" + std::to_string(n++) + ".db"), *key, "envelope",
                                 singles, singles.size());
        std::printf("%-10s %-5s %-22s %10zu %12.0f\n", name.c_str(), "each", "one envelope each",
                    singles.size(), s);
        const double f = forged_flood(dir.file("fleet-" + std::to_string(n++) + ".db"), *key, 4096,
                                      o.single, o.payload_bytes);
        std::printf("%-10s %-5s %-22s %10d %12.0f  (%.2f x the honest rate)\n", name.c_str(),
                    "none", "forged, room full", o.single, f, f / s);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--envelopes N] [--single N] [--payload-bytes B] "
               "[--alg ecdsa-p256|ed25519|sm2]...\n",
               argv0);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0]);
      return argv[++i];
    };
    auto number = [&](int lo, int hi) {
      const auto v = value();
      try {
        std::size_t used = 0;
        const int n = std::stoi(v, &used);
        if (used == v.size() && n >= lo && n <= hi) return n;
      } catch (const std::exception&) {
      }
      std::fprintf(stderr, "%s: %s takes a number in %d..%d, not '%s'\n", argv[0], a.c_str(), lo,
                   hi, v.c_str());
      std::exit(2);
    };
    if (a == "--envelopes") {
      o.envelopes = number(1, 10'000'000);
    } else if (a == "--single") {
      o.single = number(1, 10'000'000);
    } else if (a == "--payload-bytes") {
      o.payload_bytes = number(0, 65536);
    } else if (a == "--alg") {
      const auto v = value();
      if (v == "ecdsa-p256") {
        o.algs.push_back(crypto::KeyType::ecdsa_p256);
      } else if (v == "ed25519") {
        o.algs.push_back(crypto::KeyType::ed25519);
      } else if (v == "sm2") {
        o.algs.push_back(crypto::KeyType::sm2);
      } else {
        usage(argv[0]);
      }
    } else {
      usage(argv[0]);
    }
  }
  if (o.algs.empty()) {
    o.algs = {crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519, crypto::KeyType::sm2};
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  return run_bench(argv[0], [&] { return run(o); });
}
