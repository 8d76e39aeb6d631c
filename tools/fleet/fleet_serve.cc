#include "tools/fleet/fleet_serve.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "agent/audit_verify.h"
#include "agent/commands/command_signing.h"
#include "agent/identity/enrolment_proof.h"
#include "agent/identity/hardware_serial.h"
#include "agent/identity/private_file.h"
#include "agent/link/ack_signing.h"
#include "common/crypto/digest.h"
#include "common/crypto/signer.h"
#include "common/crypto/x509.h"
#include "common/file_read.h"
#include "common/file_write.h"
#include "common/hex.h"
#include "portier/v1/command.pb.h"
#include "tools/fleet/enrolment/enrolment_server.h"
#include "tools/fleet/enrolment/enrolment_service.h"
#include "tools/fleet/enrolment/fleet_ca.h"
#include "tools/fleet/enrolment/issued_key_record.h"
#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"
#include "tools/fleet/grpc_endpoint.h"
#include "tools/fleet/mqtt_intake.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/token_rotation.h"

namespace portier::fleet {
namespace {

std::atomic<bool> g_stop{false};

struct CliError {
  int code;
  std::string message;
};

std::string need_opt(const FleetArgs& a, const char* key, const char* why) {
  auto v = a.opt(key);
  if (!v || v->empty()) throw CliError{2, std::string("missing --") + key + " (" + why + ")"};
  return *v;
}

std::string random_hex(std::size_t bytes) {
  std::random_device rd;
  std::string s;
  for (std::size_t i = 0; i < bytes; ++i) s.push_back(static_cast<char>(rd() & 0xff));
  return to_hex(s);
}

std::uint64_t number(const FleetArgs& a, const char* key, std::uint64_t fallback) {
  auto v = a.opt(key);
  if (!v) return fallback;
  try {
    std::size_t used = 0;
    auto n = std::stoull(*v, &used);
    if (used != v->size()) throw std::invalid_argument("x");
    return n;
  } catch (const std::exception&) {
    throw CliError{2, std::string("--") + key + " takes a number, not '" + *v + "'"};
  }
}

void log_line(const std::string& s) { std::cerr << "portier-fleet: " << s << "\n"; }

// Delivers every queued command of <spool>/<terminal>/*.cmd it can; a
// delivered file is removed.
void deliver_spool(const std::string& spool, MqttIntake* mqtt, GrpcEndpoint* grpc) {
  std::error_code ec;
  for (auto& tdir : std::filesystem::directory_iterator(spool, ec)) {
    if (!tdir.is_directory()) continue;
    const std::string terminal = tdir.path().filename();
    for (auto& f : std::filesystem::directory_iterator(tdir.path(), ec)) {
      if (f.path().extension() != ".cmd") continue;
      auto bytes = read_small_file(f.path(), ReadOptions{.max = 1u << 20});
      if (!bytes) continue;
      Result<void> sent = fail_msg(Errc::unavailable, "no transport");
      if (grpc && grpc->connected(terminal)) sent = grpc->send_command(terminal, *bytes);
      if (!sent && mqtt && mqtt->connected()) sent = mqtt->send_command(terminal, *bytes);
      if (sent) {
        std::filesystem::remove(f.path(), ec);
        log_line("command " + f.path().stem().string() + " sent to " + terminal);
      }
    }
  }
}

// The Enrolment service of `serve --enrol`: its CA, registry and server.
struct Enrolment {
  std::unique_ptr<FleetCa> ca;
  std::unique_ptr<SqliteEnrolmentRegistry> registry;
  std::unique_ptr<EnrolmentService> service;
  std::unique_ptr<EnrolmentServer> server;
};

// The CA that issues device certificates, and the registry the terminals
// enrolled in (--enrol-ca-cert, --enrol-ca-key, --enrol-ca-chain,
// --device-lifetime, --enrol-registry).
std::pair<FleetCa, std::unique_ptr<SqliteEnrolmentRegistry>> open_enrolment(const FleetArgs& a,
                                                                            const char* why) {
  FleetCaOptions co;
  co.device_lifetime = std::chrono::seconds(number(a, "device-lifetime", 365ull * 24 * 3600));
  if (co.device_lifetime.count() < 60) throw CliError{2, "--device-lifetime: at least 60 seconds"};
  auto ca = FleetCa::load(need_opt(a, "enrol-ca-cert", "the CA that issues device certificates"),
                          need_opt(a, "enrol-ca-key", "its key"),
                          a.opt("enrol-ca-chain").value_or(""), co);
  if (!ca) throw CliError{3, ca.error().message()};
  auto reg = SqliteEnrolmentRegistry::open(need_opt(a, "enrol-registry", why));
  if (!reg) throw CliError{3, reg.error().message()};
  return {std::move(*ca), std::move(*reg)};
}

Enrolment start_enrolment(FleetStore& store, const FleetArgs& a, const std::string& client_ca) {
  Enrolment e;
  auto [ca, reg] = open_enrolment(a, "the enrolment registry (portier-fleet expect fills it)");
  e.ca = std::make_unique<FleetCa>(std::move(ca));
  e.registry = std::move(reg);
  e.service = std::make_unique<EnrolmentService>(*e.ca, *e.registry);
  e.service->on_issued([&store](const IssuedKey& k) { return record_issued(store, k); });
  EnrolmentServerOptions so;
  so.address = *a.opt("enrol");
  so.cert_chain_file = a.opt("enrol-cert").value_or(need_opt(a, "cert", "the server certificate"));
  so.key_file = a.opt("enrol-key").value_or(need_opt(a, "key", "its key"));
  so.client_ca_file = client_ca;
  auto server = EnrolmentServer::start(*e.service, so);
  if (!server) throw CliError{3, server.error().message()};
  e.server = std::move(*server);
  return e;
}

// The fleet's command key and its certificate chain (--signing-key,
// --signing-cert): it signs commands (send) and acknowledgements (serve).
struct FleetSigner {
  std::shared_ptr<crypto::KeySigner> signer;
  std::vector<crypto::Certificate> chain;
};

FleetSigner load_signer(const FleetArgs& a) {
  auto key_pem = read_small_file(need_opt(a, "signing-key", "the command key (PEM)"),
                                 ReadOptions{.max = 64 * 1024});
  if (!key_pem) throw CliError{3, key_pem.error().message()};
  auto key = crypto::PrivateKey::from_pem(*key_pem);
  if (!key) throw CliError{3, "--signing-key: " + key.error().message()};
  auto cert_pem = read_small_file(need_opt(a, "signing-cert", "its certificate chain (PEM)"),
                                  ReadOptions{.max = 256 * 1024});
  if (!cert_pem) throw CliError{3, cert_pem.error().message()};
  auto chain = crypto::Certificate::all_from_pem(*cert_pem);
  if (!chain || chain->empty()) throw CliError{3, "--signing-cert holds no certificate"};
  auto signer = crypto::KeySigner::from(std::move(*key));
  if (!signer) throw CliError{3, signer.error().message()};
  return {std::make_shared<crypto::KeySigner>(std::move(*signer)), std::move(*chain)};
}

}  // namespace

int expect(const FleetArgs& a) {
  try {
    if (a.words.size() != 2) throw CliError{2, "expect needs SERIAL"};
    const auto serial = a.words[1];
    auto checked = identity::hardware_serial(serial);
    if (!checked || *checked != serial) {
      throw CliError{
          3, "serial '" + printable(serial) + "': " +
                 (checked ? std::string("has leading or trailing spaces") : checked.error().why)};
    }
    auto secret = identity::read_private_file(
        need_opt(a, "secret-file", "the enrolment secret, a file only you may read"),
        "enrolment secret");
    if (!secret) throw CliError{3, secret.error().message()};
    if (secret->size() < identity::kMinEnrolmentSecret) {
      throw CliError{3, "the enrolment secret must be at least " +
                            std::to_string(identity::kMinEnrolmentSecret) + " bytes"};
    }
    auto reg = SqliteEnrolmentRegistry::open(need_opt(a, "enrol-registry", "the registry"));
    if (!reg) throw CliError{6, reg.error().message()};
    auto ok = (*reg)->expect(serial, crypto::byte_view(*secret));
    crypto::cleanse(*secret);
    if (!ok) throw CliError{ok.error().code == Errc::already_exists ? 5 : 6, ok.error().message()};
    std::cout << "expecting serial " << serial << "\n";
    return 0;
  } catch (const CliError& e) {
    std::cerr << "portier-fleet: " << e.message << "\n";
    return e.code;
  }
}

int serve(FleetStore& store, const FleetArgs& a) {
  try {
    const auto ca = need_opt(a, "ca", "the CA terminals' certificates chain to");
    const auto cert = need_opt(a, "cert", "the fleet's certificate");
    const auto key = need_opt(a, "key", "its key");
    const auto spool = a.opt("spool").value_or("");
    if (!a.opt("mqtt") && !a.opt("grpc") && !a.opt("enrol")) {
      throw CliError{2, "serve needs --mqtt, --grpc and/or --enrol"};
    }
    Enrolment enrolment;
    if (a.opt("enrol")) {
      enrolment = start_enrolment(store, a, ca);
      // The port actually bound (an address with port 0 gets a free one).
      std::cout << "enrol port " << enrolment.server->port() << std::endl;
    }
    // Acknowledgements are signed with the command key: the terminal
    // deletes a record only on one that chains to its trust anchors.
    std::shared_ptr<const link::AckSigner> acks;
    if (a.opt("mqtt") || a.opt("grpc")) {
      auto fs = load_signer(a);
      auto ack_signer = link::AckSigner::create(fs.signer, fs.chain);
      if (!ack_signer) throw CliError{3, "--signing-cert: " + ack_signer.error().message()};
      acks = std::make_shared<const link::AckSigner>(std::move(*ack_signer));
    }
    Receiver receiver(store);
    std::unique_ptr<MqttIntake> mqtt;
    std::unique_ptr<GrpcEndpoint> grpc;
    if (auto uri = a.opt("mqtt")) {
      MqttIntakeOptions o;
      o.server_uri = *uri;
      o.fleet = need_opt(a, "fleet", "the fleet's name in the topics");
      o.tls = {ca, cert, key};
      // A fixed id by default: the broker keeps the session (and what
      // terminals send) while portier-fleet is away.
      o.client_id = a.opt("client-id").value_or("portier-fleet-" + o.fleet);
      o.acks = acks;
      auto in = MqttIntake::create(std::move(o), receiver, log_line);
      if (!in) throw CliError{3, in.error().message()};
      mqtt = std::move(*in);
      mqtt->start();
    }
    if (auto addr = a.opt("grpc")) {
      auto e = GrpcEndpoint::start({*addr, ca, cert, key, acks}, receiver, log_line);
      if (!e) throw CliError{3, e.error().message()};
      grpc = std::move(*e);
      // The port actually bound (an address with port 0 gets a free one).
      std::cout << "grpc port " << grpc->port() << std::endl;
    }
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_stop = true; };
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::cout << "serving" << std::endl;
    while (!g_stop) {
      if (!spool.empty()) deliver_spool(spool, mqtt.get(), grpc.get());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (mqtt) mqtt->stop();
    if (grpc) grpc->stop();
    if (enrolment.server) enrolment.server->stop();
    return 0;
  } catch (const CliError& e) {
    std::cerr << "portier-fleet: " << e.message << "\n";
    return e.code;
  }
}

// install-certificate's body: --cert FILE (PEM: the device certificate,
// then its chain), or the CSR of the terminal's newest rotate-key result
// for a key in a PKCS#11 token (token_rotation.h: --from-result COMMAND_ID
// and/or --csr FILE, each checked against that result) certified now by
// the enrolment CA for the serial the registry holds, the store told of
// the terminal's next key. The terminal checks either before anything
// changes (REQ-36).
v1::InstallCertificate certificate_to_install(FleetStore& store, const FleetArgs& a,
                                              const std::string& terminal) {
  v1::InstallCertificate ic;
  const auto cert_file = a.opt("cert");
  const auto csr_file = a.opt("csr");
  const auto from_result = a.opt("from-result");
  if (cert_file.has_value() == (csr_file.has_value() || from_result.has_value())) {
    throw CliError{2,
                   "install-certificate needs --cert FILE (the certificate, then its chain) "
                   "or --from-result COMMAND_ID and/or --csr FILE (the terminal's newest "
                   "rotate-key result, for a key in a PKCS#11 token; issued with "
                   "--enrol-ca-cert, --enrol-ca-key and --enrol-registry)"};
  }
  if (cert_file) {
    auto pem = read_small_file(*cert_file, ReadOptions{.max = 1u << 20});
    if (!pem) throw CliError{3, pem.error().message()};
    auto certs = crypto::Certificate::all_from_pem(*pem);
    if (!certs) throw CliError{3, "--cert " + *cert_file + ": " + certs.error().message()};
    if (certs->empty()) throw CliError{3, "--cert " + *cert_file + ": holds no certificate"};
    if ((*certs)[0].subject_cn() != terminal) {
      throw CliError{3, "--cert " + *cert_file + ": the certificate is for \"" +
                            (*certs)[0].subject_cn() + "\", not terminal " + terminal};
    }
    // For the key the fleet verifies the terminal with, or its certified
    // next key: a certificate for any other key would switch the terminal
    // to a key whose every envelope the fleet refuses.
    auto key = (*certs)[0].public_key();
    auto key_pem = key ? key->to_pem() : Result<std::string>(std::unexpected(key.error()));
    if (!key_pem) throw CliError{3, "--cert " + *cert_file + ": " + key_pem.error().message()};
    auto known = store.terminal(terminal);
    if (!known)
      throw CliError{known.error().code == Errc::not_found ? 4 : 3, known.error().message()};
    auto keys = store.keys(terminal);
    if (!keys) throw CliError{3, keys.error().message()};
    const bool ours = known->public_key_pem == *key_pem ||
                      std::any_of(keys->begin(), keys->end(), [&](const TerminalKey& k) {
                        return k.public_key_pem == *key_pem;
                      });
    if (!ours) {
      throw CliError{3, "--cert " + *cert_file + ": the certificate's key is neither terminal " +
                            terminal +
                            "'s key nor its certified next key (the fleet would "
                            "refuse all it signs); for a rotate-key CSR use --csr"};
    }
    for (std::size_t i = 0; i < certs->size(); ++i) {
      auto der = (*certs)[i].der();
      if (!der) throw CliError{3, "--cert " + *cert_file + ": " + der.error().message()};
      std::string bytes(der->begin(), der->end());
      if (i == 0) {
        ic.set_certificate(std::move(bytes));
      } else {
        ic.add_chain(std::move(bytes));
      }
    }
    return ic;
  }
  TokenRotationAsked asked;
  asked.command_id = from_result;
  if (csr_file) {
    auto pem = read_small_file(*csr_file, ReadOptions{.max = 64 * 1024});
    if (!pem) throw CliError{3, pem.error().message()};
    // A rotate-key result: its text, then the CSR.
    const auto begin = pem->find("-----BEGIN CERTIFICATE REQUEST-----");
    if (begin == std::string::npos) {
      throw CliError{3, "--csr " + *csr_file + ": no CSR (PEM) in it"};
    }
    auto csr = crypto::CertificateRequest::from_pem(pem->substr(begin));
    if (!csr) throw CliError{3, "--csr " + *csr_file + ": " + csr.error().message()};
    if (csr->subject().common_name != terminal) {
      throw CliError{3, "--csr " + *csr_file + ": the CSR is for \"" + csr->subject().common_name +
                            "\", not terminal " + terminal};
    }
    asked.csr = std::move(*csr);
  }
  // Only the CSR the terminal sent, in its newest verified rotate-key
  // result, of a key in its token: what is certified is that result's CSR.
  auto rotation = newest_token_rotation(store, terminal, asked);
  if (!rotation) {
    throw CliError{
        rotation.error().code == Errc::not_found ? 4 : 3,
        (csr_file ? "--csr " + *csr_file + ": " : std::string()) + rotation.error().message()};
  }
  auto [ca, reg] = open_enrolment(a, "the enrolment registry the terminal enrolled in");
  EnrolmentService service(ca, *reg);
  service.on_issued([&store](const IssuedKey& k) { return record_issued(store, k); });
  // No cutover: the terminal (a key in a PKCS#11 token, which never leaves
  // it, as its signed result says) switches keys when InstallCertificate
  // arrives, at a sequence the fleet cannot know now; the next key takes
  // over at its first envelope.
  auto issued = service.rotate(rotation->csr.subject().serial_number,
                               crypto::byte_view(rotation->csr_der), 0);
  if (!issued) {
    throw CliError{issued.error().code == Errc::not_found ? 4 : 3, issued.error().message()};
  }
  ic.set_certificate(issued->certificate());
  for (const auto& c : issued->chain()) ic.add_chain(c);
  return ic;
}

int send(FleetStore& store, const FleetArgs& a) {
  try {
    if (a.words.size() < 3) throw CliError{2, "send needs TERMINAL ACTION"};
    const auto terminal = a.words[1];
    const auto action = a.words[2];
    if (!store.terminal(terminal)) throw CliError{4, "unknown terminal " + terminal};
    const auto spool = need_opt(a, "spool", "where serve picks commands up");
    auto fs = load_signer(a);
    v1::Command c;
    c.set_command_id(a.opt("id").value_or("c-" + random_hex(8)));
    // The id names the spool file: letters, digits, '-', '_', '.' only.
    bool id_ok =
        !c.command_id().empty() && c.command_id().size() <= 128 && c.command_id().front() != '.';
    for (char ch : c.command_id())
      id_ok = id_ok &&
              (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.');
    if (!id_ok) throw CliError{2, "--id: 1..128 of A-Z a-z 0-9 - _ . (not starting with '.')"};
    c.set_target_terminal(terminal);
    c.set_nonce(random_hex(16));
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    c.mutable_not_before()->set_seconds(now - 5);
    c.mutable_expires()->set_seconds(now + static_cast<std::int64_t>(number(a, "expires-in", 600)));
    if (action == "ping") {
      c.mutable_ping()->set_text(a.opt("text").value_or("ping"));
    } else if (action == "run-health-checks") {
      c.mutable_run_health_checks();
    } else if (action == "set-intervals") {
      auto* s = c.mutable_set_telemetry_intervals();
      s->set_health_seconds(static_cast<std::uint32_t>(number(a, "health", 0)));
      s->set_decisions_seconds(static_cast<std::uint32_t>(number(a, "decisions", 0)));
      s->set_checkpoint_seconds(static_cast<std::uint32_t>(number(a, "checkpoint", 0)));
    } else if (action == "replace-policy") {
      auto text =
          read_small_file(need_opt(a, "policy", "the policy file"), ReadOptions{.max = 4u << 20});
      if (!text) throw CliError{3, text.error().message()};
      c.mutable_replace_policy()->set_policy_toml(*text);
      c.mutable_replace_policy()->set_version(number(a, "version", 0));
      if (c.replace_policy().version() == 0) throw CliError{2, "replace-policy needs --version N"};
    } else if (action == "usb") {
      if (a.flag("authorize") == a.flag("block"))
        throw CliError{2, "usb needs --authorize or --block"};
      c.mutable_usb_authorization()->set_device_id(need_opt(a, "device", "the USB device"));
      c.mutable_usb_authorization()->set_authorize(a.flag("authorize"));
    } else if (action == "fetch-audit") {
      c.mutable_fetch_audit_range()->set_first(number(a, "first", 1));
      c.mutable_fetch_audit_range()->set_last(number(a, "last", 1));
    } else if (action == "rotate-key") {
      c.mutable_rotate_device_key();
      // The terminal's Renew with its new key is accepted once, from now.
      if (auto reg_path = a.opt("enrol-registry")) {
        auto reg = SqliteEnrolmentRegistry::open(*reg_path);
        if (!reg) throw CliError{6, reg.error().message()};
        if (auto ok = (*reg)->allow_rotation(terminal); !ok) {
          throw CliError{ok.error().code == Errc::not_found ? 4 : 6, ok.error().message()};
        }
      }
    } else if (action == "install-certificate") {
      *c.mutable_install_certificate() = certificate_to_install(store, a, terminal);
    } else {
      throw CliError{2, "unknown action '" + action +
                            "' (ping, run-health-checks, set-intervals, replace-policy, usb, "
                            "fetch-audit, rotate-key, install-certificate)"};
    }
    auto signed_command = commands::sign_command(c, *fs.signer, fs.chain);
    if (!signed_command) throw CliError{3, signed_command.error().message()};
    // Kept, so that its result can be tied to what was sent (a result names
    // the command's id and digest only).
    auto digest = crypto::digest(crypto::DigestAlgo::sha256, signed_command->command());
    if (!digest) throw CliError{6, digest.error().message()};
    if (auto ok = store.add_sent_command({terminal, c.command_id(),
                                          std::string(digest->begin(), digest->end()), action,
                                          std::chrono::system_clock::now()});
        !ok) {
      throw CliError{6, ok.error().message()};
    }
    const std::string dir = spool + "/" + terminal;
    std::filesystem::create_directories(dir);
    if (auto ok = replace_file(dir + "/" + c.command_id() + ".cmd",
                               signed_command->SerializeAsString(), 0600);
        !ok) {
      throw CliError{6, ok.error().message()};
    }
    std::cout << c.command_id() << "\n";
    return 0;
  } catch (const CliError& e) {
    std::cerr << "portier-fleet: " << e.message << "\n";
    return e.code;
  }
}

int results(FleetStore& store, const FleetArgs& a) {
  if (a.words.size() < 2) {
    std::cerr << "portier-fleet: results needs TERMINAL\n";
    return 2;
  }
  auto r = store.results(a.words[1], 1000);
  if (!r) {
    std::cerr << "portier-fleet: " << r.error().message() << "\n";
    return r.error().code == Errc::not_found ? 4 : 6;
  }
  for (auto& e : *r) {
    v1::CommandResult cr;
    cr.ParseFromString(e.result);
    const char* st = cr.status() == v1::CommandResult::OK        ? "OK"
                     : cr.status() == v1::CommandResult::REFUSED ? "REFUSED"
                                                                 : "FAILED";
    if (a.flag("json")) {
      std::cout << "{\"command_id\":\"" << agent::json_escape(e.command_id) << "\",\"status\":\""
                << st << "\",\"sequence\":" << e.sequence
                << ",\"repeated\":" << (cr.repeated_command() ? "true" : "false") << "}\n";
    } else {
      std::cout << e.command_id << " " << st << (cr.repeated_command() ? " (repeat)" : "") << " "
                << cr.message() << (cr.output().empty() ? "" : " :: " + cr.output()) << "\n";
    }
  }
  return 0;
}

}  // namespace portier::fleet
