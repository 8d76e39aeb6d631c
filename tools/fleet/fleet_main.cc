// portier-fleet: the management plane's CLI over its store (issue 10, item
// 8): register terminals, read what they sent, re-verify a chain offline.
// Exit codes are in kUsage; errors go to stderr on one line.
#include <sys/stat.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "agent/envelope/envelope_chain.h"
#include "common/file_read.h"
#include "portier/v1/envelope.pb.h"
#include "portier/v1/telemetry.pb.h"
#include "tools/fleet/fleet_args.h"
#include "tools/fleet/fleet_output.h"
#include "tools/fleet/fleet_serve.h"
#include "tools/fleet/sqlite_fleet_store.h"
#include "tools/fleet/stored_chain_check.h"

namespace portier::fleet {
namespace {

constexpr const char* kUsage =
    "usage: portier-fleet --db PATH [--json] COMMAND ...\n"
    "  add-terminal TERMINAL --public-key FILE  register a terminal and its public key (PEM:\n"
    "                                           ECDSA P-256, Ed25519 or SM2)\n"
    "  terminals                                every terminal: state, epoch, last seen\n"
    "  show TERMINAL                            identity, state, epoch, last sequence, last\n"
    "                                           health, inventory, counts, recent incidents\n"
    "  verify-chain TERMINAL                    re-verify every stored envelope offline from\n"
    "                                           the first (signatures, digests, chain); names\n"
    "                                           the first bad sequence\n"
    "  audit TERMINAL [--from N] [--limit N]    the audit records received, from record N\n"
    "  incidents [TERMINAL] [--limit N]         rejected or suspicious messages, newest last\n"
    "  results TERMINAL                         the answers to the commands sent to it\n"
    "  serve --ca CA --cert C --key K [--mqtt ssl://HOST:PORT --fleet F] [--grpc HOST:PORT]\n"
    "        --signing-key K --signing-cert CHAIN receive from the broker and/or serve the gRPC\n"
    "        [--spool DIR]                      endpoint into the store; acknowledge what is\n"
    "                                           stored, signed with the command key; deliver\n"
    "                                           queued commands\n"
    "        [--enrol HOST:PORT --enrol-ca-cert F --enrol-ca-key F [--enrol-ca-chain F]\n"
    "         --enrol-registry DB [--enrol-cert C --enrol-key K] [--device-lifetime S]]\n"
    "                                           and the Enrolment service: device certificates\n"
    "                                           from that CA for the serials of the registry\n"
    "                                           (TLS: --enrol-cert, else --cert); enrolled\n"
    "                                           terminals are registered in the store\n"
    "  expect SERIAL --secret-file F --enrol-registry DB\n"
    "                                           provision a serial for enrolment with its\n"
    "                                           one-time secret (a 0600 file, 16 bytes or more)\n"
    "  send TERMINAL ACTION --signing-key K --signing-cert CHAIN --spool DIR [--id ID]\n"
    "        [--expires-in S]                   sign a command and queue it for serve. ACTION:\n"
    "                                           ping [--text T], run-health-checks,\n"
    "                                           set-intervals [--health S] [--decisions S]\n"
    "                                           [--checkpoint S], replace-policy --policy FILE\n"
    "                                           --version N, usb --device D --authorize|--block,\n"
    "                                           fetch-audit --first N --last M, rotate-key\n"
    "                                           [--enrol-registry DB: the new key is accepted],\n"
    "                                           install-certificate --cert FILE (PEM: the\n"
    "                                           certificate, then its chain) | --from-result\n"
    "                                           ID and/or --csr FILE (the CSR of the\n"
    "                                           terminal's newest verified rotate-key result,\n"
    "                                           a key in a PKCS#11 token; issued now with\n"
    "                                           --enrol-ca-cert F --enrol-ca-key F\n"
    "                                           --enrol-registry DB [--device-lifetime S])\n"
    "--db: the fleet database (SQLite; created by add-terminal), else $PORTIER_FLEET_DB\n"
    "--json: one JSON object on stdout (every read command)\n"
    "exit codes: 0 ok, 1 verify-chain found the chain broken, 2 usage, 3 input refused\n"
    "(a bad key or terminal id), 4 unknown terminal or no database, 5 already registered,\n"
    "6 the store failed\n";

struct Failure {
  int code;
  std::string message;
};

int exit_code(Errc c) {
  switch (c) {
    case Errc::invalid_argument:
    case Errc::permission_denied:
      return 3;
    case Errc::not_found:
      return 4;
    case Errc::already_exists:
      return 5;
    default:
      return 6;
  }
}

template <class T>
T need(Result<T> r) {
  if (!r) throw Failure{exit_code(r.error().code), r.error().message()};
  return std::move(*r);
}

// Terminal ids go into MQTT topics and file names: a conservative alphabet.
void check_terminal_id(const std::string& id) {
  // Not "." or "..": the id also names a spool directory.
  bool ok = !id.empty() && id.size() <= 128 && id.front() != '.';
  for (char c : id) {
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.');
  }
  if (!ok) {
    throw Failure{3, "terminal id '" + printable(id) +
                         "': use 1..128 of A-Z a-z 0-9 - _ . , not starting with '.' (it names "
                         "MQTT topics and spool directories)"};
  }
}

std::string word(const FleetArgs& a, std::size_t i, const char* what) {
  if (a.words.size() <= i) throw UsageError{std::string("missing ") + what};
  return a.words[i];
}

void no_more_words(const FleetArgs& a, std::size_t n) {
  if (a.words.size() > n) throw UsageError{"unexpected argument '" + a.words[n] + "'"};
}

std::string state_name(const Terminal& t) {
  if (t.last_seen == TimePoint{}) return "never seen";
  return t.online ? "online" : "offline";
}

std::string terminal_json(const Terminal& t) {
  std::string kid;
  if (auto key = crypto::PublicKey::from_pem(t.public_key_pem)) {
    if (auto id = envelope::key_id(*key)) kid = *id;
  }
  return JsonObject()
      .add("id", t.id)
      .add("key_algorithm", t.key_algorithm)
      .add("key_id", kid)
      .add("state", state_name(t))
      .add("session_epoch", t.session_epoch)
      .add("registered", format_time(t.registered))
      .add("first_seen", format_time(t.first_seen))
      .add("last_seen", format_time(t.last_seen))
      .str();
}

std::string incident_json(const Incident& i) {
  return JsonObject()
      .add("id", static_cast<std::uint64_t>(i.id))
      .add("terminal", i.terminal_id)
      .add("time", format_time(i.time))
      .add("kind", i.kind)
      .add("sequence", i.sequence)
      .add("detail", i.detail)
      .add("count", i.count)
      .str();
}

std::string incident_line(const Incident& i) {
  return format_time(i.time) + "  " + printable(i.terminal_id) + "  " + i.kind +
         (i.sequence ? "  seq " + std::to_string(i.sequence) : std::string()) +
         (i.count > 1 ? "  x" + std::to_string(i.count) : std::string()) + "  " +
         printable(i.detail);
}

int add_terminal(FleetStore& store, const FleetArgs& a) {
  const auto id = word(a, 1, "TERMINAL");
  no_more_words(a, 2);
  check_terminal_id(id);
  const auto file = a.opt("public-key");
  if (!file) throw UsageError{"add-terminal needs --public-key FILE"};
  auto pem = read_small_file(*file, ReadOptions{64 * 1024});
  if (!pem) throw Failure{3, pem.error().message()};
  auto key = crypto::PublicKey::from_pem(*pem);
  if (!key) throw Failure{3, *file + ": not a usable public key: " + key.error().message()};
  auto canonical = need(key->to_pem());
  Terminal t;
  t.id = id;
  t.public_key_pem = canonical;
  t.key_algorithm = std::string(crypto::name(key->type()));
  t.registered = std::chrono::system_clock::now();
  if (auto ok = store.add_terminal(t); !ok) {
    throw Failure{exit_code(ok.error().code), ok.error().message()};
  }
  std::cout << "registered " << id << " (" << t.key_algorithm << ", key id "
            << need(envelope::key_id(*key)) << ")\n";
  return 0;
}

int terminals(FleetStore& store, const FleetArgs& a) {
  no_more_words(a, 1);
  auto all = need(store.terminals());
  if (a.flag("json")) {
    std::vector<std::string> items;
    for (auto& t : all) items.push_back(terminal_json(t));
    std::cout << JsonObject().add_raw("terminals", json_array(items)).str() << "\n";
    return 0;
  }
  std::printf("%-24s %-10s %-11s %6s  %s\n", "TERMINAL", "KEY", "STATE", "EPOCH", "LAST SEEN");
  for (auto& t : all) {
    std::printf("%-24s %-10s %-11s %6llu  %s\n", t.id.c_str(), t.key_algorithm.c_str(),
                state_name(t).c_str(), static_cast<unsigned long long>(t.session_epoch),
                format_time(t.last_seen).c_str());
  }
  return 0;
}

int show(FleetStore& store, const FleetArgs& a) {
  const auto id = word(a, 1, "TERMINAL");
  no_more_words(a, 2);
  auto t = need(store.terminal(id));
  auto counts = need(store.counts(id));
  auto chain = need(store.chain(id));
  auto health = need(store.latest(id, v1::PAYLOAD_HEALTH));
  auto inventory = need(store.latest(id, v1::PAYLOAD_INVENTORY));
  auto incidents = need(store.incidents(id, 10));
  v1::HealthReport h;
  v1::Inventory inv;
  v1::Birth birth;
  const bool has_health = health && h.ParseFromString(health->payload);
  const bool has_inventory = inventory && inv.ParseFromString(inventory->payload);
  const bool has_birth = !t.last_birth.empty() && birth.ParseFromString(t.last_birth);
  if (a.flag("json")) {
    std::vector<std::string> inc;
    for (auto& i : incidents) inc.push_back(incident_json(i));
    JsonObject o;
    o.add_raw("terminal", terminal_json(t))
        .add("last_sequence", counts.last_sequence)
        .add("next_sequence", chain.state.next_sequence)
        .add("waiting_for_signature", static_cast<std::uint64_t>(chain.pending.size()))
        .add("held_past_gap", static_cast<std::uint64_t>(chain.parked.size()))
        .add_raw("counts", JsonObject()
                               .add("envelopes", counts.envelopes)
                               .add("audit_records", counts.audit)
                               .add("command_results", counts.results)
                               .add("incidents", counts.incidents)
                               .str())
        .add_raw("policy", has_birth ? JsonObject()
                                           .add("sha256", birth.policy_sha256())
                                           .add("version", birth.policy_version())
                                           .add("portierd_version", birth.portierd_version())
                                           .str()
                                     : "null")
        .add_raw("birth", has_birth ? json_message(birth) : "null")
        .add_raw("health", has_health ? json_message(h) : "null")
        .add("health_time", health ? format_time(health->time) : "")
        .add_raw("inventory", has_inventory ? json_message(inv) : "null")
        .add_raw("incidents", json_array(inc));
    std::cout << o.str() << "\n";
    return 0;
  }
  std::string kid;
  if (auto key = crypto::PublicKey::from_pem(t.public_key_pem)) kid = need(envelope::key_id(*key));
  std::cout << "terminal       " << t.id << "\n"
            << "key            " << t.key_algorithm << " " << kid << "\n"
            << "state          " << state_name(t) << " (session epoch " << t.session_epoch << ")\n"
            << "registered     " << format_time(t.registered) << "\n"
            << "first seen     " << format_time(t.first_seen) << "\n"
            << "last seen      " << format_time(t.last_seen) << "\n"
            << "last sequence  " << counts.last_sequence << " (" << chain.pending.size()
            << " waiting for a signature, " << chain.parked.size() << " held past a gap)\n"
            << "stored         " << counts.envelopes << " envelopes, " << counts.audit
            << " audit records, " << counts.results << " command results, " << counts.incidents
            << " incidents\n";
  if (has_birth) {
    std::cout << "portierd       " << printable(birth.portierd_version()) << "\n"
              << "policy         sha256 "
              << (birth.policy_sha256().empty() ? std::string("unknown")
                                                : printable(birth.policy_sha256()))
              << ", version " << birth.policy_version()
              << (birth.policy_version() ? " (the last the fleet installed)"
                                         : " (none installed by the fleet)")
              << "\n";
  }
  if (has_health) {
    std::cout << "health         " << v1::Health::State_Name(h.health().state()) << " at "
              << format_time(health->time);
    for (auto& r : h.health().reasons()) std::cout << "; " << printable(r);
    std::cout << "\n";
  }
  if (has_inventory) {
    std::cout << "inventory      " << inv.devices_size() << " device(s)\n";
    for (auto& d : inv.devices()) {
      std::cout << "  " << printable(d.id()) << "  " << printable(d.device_class()) << "  "
                << v1::DeviceState_Name(d.state()) << "\n";
    }
  }
  if (!incidents.empty()) {
    std::cout << "incidents (last " << incidents.size() << ")\n";
    for (auto& i : incidents) std::cout << "  " << incident_line(i) << "\n";
  }
  return 0;
}

int verify_chain(FleetStore& store, const FleetArgs& a) {
  const auto id = word(a, 1, "TERMINAL");
  no_more_words(a, 2);
  auto report = need(check_stored_chain(store, id));
  if (a.flag("json")) {
    std::cout << JsonObject()
                     .add("terminal", id)
                     .add("ok", report.ok)
                     .add("verified", report.verified)
                     .add("first_bad_sequence", report.first_bad)
                     .add("problem", report.problem)
                     .str()
              << "\n";
  } else if (report.ok) {
    std::cout << "chain of " << id << ": ok, " << report.verified << " envelope(s) verified\n";
  } else {
    std::cout << "chain of " << id << ": BROKEN at sequence " << report.first_bad << ": "
              << report.problem << " (" << report.verified << " envelope(s) verified before)\n";
  }
  return report.ok ? 0 : 1;
}

int audit(FleetStore& store, const FleetArgs& a) {
  const auto id = word(a, 1, "TERMINAL");
  no_more_words(a, 2);
  const auto from = number_option(a, "from", 0, UINT64_MAX >> 1);
  const auto limit = number_option(a, "limit", 100000, 10000000);
  need(store.terminal(id));
  auto records = need(store.audit(id, from, limit));
  if (a.flag("json")) {
    std::vector<std::string> items;
    for (auto& r : records) {
      items.push_back(JsonObject()
                          .add("record", r.record)
                          .add("sequence", r.sequence)
                          .add("line", r.line)
                          .str());
    }
    std::cout << JsonObject().add("terminal", id).add_raw("records", json_array(items)).str()
              << "\n";
    return 0;
  }
  for (auto& r : records) std::cout << r.record << "\t" << printable(r.line) << "\n";
  return 0;
}

int incidents(FleetStore& store, const FleetArgs& a) {
  std::string id;
  if (a.words.size() > 1) {
    id = a.words[1];
    need(store.terminal(id));
  }
  no_more_words(a, 2);
  const auto limit = number_option(a, "limit", 1000, 10000000);
  auto all = need(store.incidents(id, limit));
  if (a.flag("json")) {
    std::vector<std::string> items;
    for (auto& i : all) items.push_back(incident_json(i));
    std::cout << JsonObject().add_raw("incidents", json_array(items)).str() << "\n";
    return 0;
  }
  for (auto& i : all) std::cout << incident_line(i) << "\n";
  return 0;
}

int run(int argc, char** argv) {
  FleetArgs a = parse_fleet_args(argc, argv);
  if (a.flag("help")) {
    std::cout << kUsage;
    return 0;
  }
  if (a.words.empty()) throw UsageError{"missing COMMAND"};
  const std::string& cmd = a.words[0];
  if (cmd == "expect") return expect(a);  // the enrolment registry only
  using Handler = int (*)(FleetStore&, const FleetArgs&);
  Handler h = nullptr;
  if (cmd == "add-terminal") h = add_terminal;
  if (cmd == "terminals") h = terminals;
  if (cmd == "show") h = show;
  if (cmd == "verify-chain") h = verify_chain;
  if (cmd == "audit") h = audit;
  if (cmd == "incidents") h = incidents;
  if (cmd == "serve") h = serve;
  if (cmd == "send") h = send;
  if (cmd == "results") h = results;
  if (!h) throw UsageError{"unknown command '" + cmd + "'"};
  if (cmd == "add-terminal" && a.flag("json")) throw UsageError{"add-terminal takes no --json"};
  std::string db;
  if (auto o = a.opt("db")) {
    db = *o;
  } else if (const char* env = std::getenv("PORTIER_FLEET_DB"); env && *env) {
    db = env;
  } else {
    throw UsageError{"missing --db PATH"};
  }
  struct stat st {};
  // Enrolment registers terminals itself: serve --enrol may start empty.
  const bool creates = cmd == "add-terminal" || (cmd == "serve" && a.opt("enrol"));
  if (!creates && ::stat(db.c_str(), &st) != 0) {
    throw Failure{4, "no fleet database at " + db + " (add-terminal or serve --enrol creates it)"};
  }
  auto store = need(SqliteFleetStore::open(db));
  return h(*store, a);
}

}  // namespace
}  // namespace portier::fleet

int main(int argc, char** argv) {
  try {
    return portier::fleet::run(argc, argv);
  } catch (const portier::fleet::UsageError& e) {
    std::cerr << "portier-fleet: " << e.message << "\n" << portier::fleet::kUsage;
    return 2;
  } catch (const portier::fleet::Failure& f) {
    std::cerr << "portier-fleet: " << f.message << "\n";
    return f.code;
  }
}
