// portierctl: the local admin and test CLI for portierd.
// Exit codes: 0 ok, 2 usage, 3 permission denied, 4 not found or unavailable,
// 1 anything else; errors go to stderr on one line.
#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "agent/audit_checkpoint.h"
#include "agent/audit_verify.h"
#include "common/crypto/x509.h"
#include "common/file_read.h"
#include "ctl_args.h"
#include "ctl_output.h"
#include "policy/policy.h"
#include "portier/v1/gateway.grpc.pb.h"

namespace portier::ctl {
namespace {

constexpr const char* kUsage =
    "usage: portierctl [--socket PATH] [--json] COMMAND ...\n"
    "  devices [--follow]                       list devices you may see (--follow: and\n"
    "                                           then print arrivals, removals, changes)\n"
    "  watch [--device ID] [--count N]          print events (all readable devices by default)\n"
    "  claim ID --seconds N [--count N]         hold ID exclusively and print its events\n"
    "  send ID (--text S | --data HEX)          claim ID briefly and send bytes to it\n"
    "  transmit ID --apdu HEX [--timeout-ms MS] claim a card reader briefly, send one APDU,\n"
    "                                           print the response (hex)\n"
    "  act ID ACTION [--data HEX] [--param K=V,K=V] [--timeout-ms MS]\n"
    "                                           run a device action (see devices --json)\n"
    "  health [--run]                           the daemon's health summary (--run: run\n"
    "                                           every health check now first)\n"
    "  whoami                                   how the daemon identifies you\n"
    "  policy explain --app-uid U [--app-gid G] [--exe P] [--sha256 H] [--unit U]\n"
    "                 --device D [--class C] --op O [--policy FILE]\n"
    "                                           the decision and the rule behind it\n"
    "                                           (--policy FILE: offline, without the daemon)\n"
    "  audit tail [--count N] [--follow]        recent audit records\n"
    "  audit verify FILE...                     check the hash chain of audit files, oldest\n"
    "                                           first: audit.jsonl.2 audit.jsonl.1 audit.jsonl\n"
    "                                           (reads the files, no daemon; exit 1: a problem)\n"
    "        [--checkpoints FILE (--cert PEM | --key PEM)]\n"
    "                                           also the terminal's signed checkpoints (its\n"
    "                                           management/audit-checkpoints.jsonl) with its\n"
    "                                           certificate or public key: catches a trail\n"
    "                                           rewritten chain and all, truncated or deleted\n"
    "                                           (after key rotations: every certificate the\n"
    "                                           terminal had, in one PEM file)\n"
    "socket: --socket, else $PORTIER_SOCKET, else /run/portier/portierd.sock\n"
    "--timeout S: deadline of each call in seconds (1..3600, default 5)\n"
    "exit codes: 0 ok, 2 usage, 3 permission denied, 4 not found/unavailable, 1 other\n";

struct Failure {
  int code;
  std::string message;
};

int exit_code(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return 3;
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::UNAVAILABLE:
      return 4;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return 2;
    default:
      return 1;
  }
}

const char* code_name(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    default:
      return "ERROR";
  }
}

[[noreturn]] void raise(const grpc::Status& st) {
  std::string msg = st.error_message();
  for (auto& ch : msg) {
    if (ch == '\n') ch = ' ';
  }
  throw Failure{exit_code(st.error_code()), std::string(code_name(st.error_code())) + ": " + msg};
}

class Ctl {
 public:
  explicit Ctl(const Args& a) : args_(a), json_(a.flag("json")) {
    socket_ =
        a.opt("socket").value_or(std::getenv("PORTIER_SOCKET") ? std::getenv("PORTIER_SOCKET")
                                                               : "/run/portier/portierd.sock");
    timeout_ = static_cast<int>(number_option(a, "timeout", 5, 3600));
    if (timeout_ < 1) throw UsageError{"--timeout must be 1..3600 seconds"};
  }

  int run() {
    const auto& w = args_.words;
    if (w.empty() || args_.flag("help")) {
      std::fputs(kUsage, w.empty() && !args_.flag("help") ? stderr : stdout);
      return w.empty() && !args_.flag("help") ? 2 : 0;
    }
    check_options(w);
    if (w[0] == "devices") return devices();
    if (w[0] == "watch") return watch();
    if (w[0] == "claim") return claim();
    if (w[0] == "send") return send();
    if (w[0] == "transmit") return transmit();
    if (w[0] == "act") return act();
    if (w[0] == "health") return health();
    if (w[0] == "whoami") return whoami();
    if (w[0] == "policy" && w.size() > 1 && w[1] == "explain") return explain();
    if (w[0] == "audit" && w.size() > 1 && w[1] == "tail") return audit_tail();
    if (w[0] == "audit" && w.size() > 1 && w[1] == "verify") return audit_verify();
    throw UsageError{"unknown command '" + w[0] + (w.size() > 1 ? " " + w[1] : "") + "'"};
  }

 private:
  // Each command accepts only its own options: a misplaced one is a usage
  // error, not silently ignored.
  void check_options(const std::vector<std::string>& w) {
    static const std::map<std::string, std::set<std::string>> allowed = {
        {"devices", {"follow"}},
        {"watch", {"device", "count"}},
        {"claim", {"seconds", "count"}},
        {"send", {"text", "data"}},
        {"transmit", {"apdu", "timeout-ms"}},
        {"act", {"data", "param", "timeout-ms"}},
        {"health", {"run"}},
        {"whoami", {}},
        {"policy",
         {"app-uid", "app-gid", "exe", "sha256", "unit", "device", "class", "op", "policy"}},
        {"audit", {"count", "follow", "checkpoints", "cert", "key"}},
    };
    auto it = allowed.find(w[0]);
    if (it == allowed.end()) return;  // unknown command: reported by run()
    auto ok = [&](const std::string& k) {
      return k == "socket" || k == "json" || k == "timeout" || k == "help" || it->second.count(k);
    };
    for (auto& [k, v] : args_.options) {
      if (!ok(k)) throw UsageError{"--" + k + " does not apply to '" + w[0] + "'"};
    }
    for (auto& f : args_.flags) {
      if (!ok(f)) throw UsageError{"--" + f + " does not apply to '" + w[0] + "'"};
    }
  }

  v1::Gateway::Stub& stub() {
    if (!stub_) {
      check_socket_access();
      auto ch = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
      stub_ = v1::Gateway::NewStub(ch);
    }
    return *stub_;
  }
  // A socket this user may not open is told apart from a daemon that is not
  // there (gRPC says UNAVAILABLE for both): its own message, exit 3.
  void check_socket_access() const {
    if (::access(socket_.c_str(), W_OK) == 0 || errno != EACCES) return;
    std::string hint;
    struct stat st {};
    if (::stat(socket_.c_str(), &st) != 0) {
      hint = "a directory on its path is closed to this user";
    } else {
      group* g = getgrgid(st.st_gid);
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
      hint = "is this user in group " + (g ? std::string(g->gr_name) : std::to_string(st.st_gid)) +
             "? the socket is mode " + mode;
    }
    throw Failure{3, "socket permission denied: " + socket_ + " (" + hint +
                         "; see README, Running without systemd)"};
  }
  void deadline(grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_));
  }
  void out(const std::string& line) {
    std::lock_guard lock(out_mu_);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  int devices() {
    if (args_.flag("follow")) return follow_devices();
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ListDevicesResponse r;
    auto st = stub().ListDevices(&ctx, {}, &r);
    if (!st.ok()) raise(st);
    for (auto& d : r.devices()) out(json_ ? to_json_line(d) : format_device(d));
    return 0;
  }

  int follow_devices() {
    grpc::ClientContext ctx;
    v1::WatchDevicesRequest req;
    req.set_include_existing(true);
    auto reader = stub().WatchDevices(&ctx, req);
    v1::DeviceChange ch;
    while (reader->Read(&ch)) out(json_ ? to_json_line(ch) : format_change(ch));
    auto st = reader->Finish();
    if (!st.ok()) raise(st);
    return 0;
  }

  // Streams `device`'s events until `count` (0 = forever) or `until`.
  grpc::Status stream_events(const std::string& device, std::uint64_t count,
                             std::atomic<std::uint64_t>& seen, grpc::ClientContext& ctx) {
    v1::SubscribeRequest req;
    req.set_device_id(device);
    auto reader = stub().Subscribe(&ctx, req);
    v1::PeripheralEvent ev;
    while (reader->Read(&ev)) {
      auto n = ++seen;
      if (count && n > count) break;
      out(json_ ? to_json_line(ev) : format_event(ev));
      if (count && n >= count) {
        ctx.TryCancel();
        break;
      }
    }
    auto st = reader->Finish();
    if (count && seen >= count) return grpc::Status::OK;
    return st;
  }

  int watch() {
    auto count = number_option(args_, "count", 0, 1ull << 40);
    std::vector<std::string> ids;
    if (auto d = args_.opt("device")) {
      ids.push_back(*d);
    } else {
      grpc::ClientContext ctx;
      deadline(ctx);
      v1::ListDevicesResponse r;
      auto st = stub().ListDevices(&ctx, {}, &r);
      if (!st.ok()) raise(st);
      for (auto& d : r.devices()) {
        for (auto& c : d.capabilities()) {
          if (c == "events") ids.push_back(d.id());
        }
      }
      if (ids.empty()) throw Failure{4, "NOT_FOUND: no device with events that you may list"};
    }
    std::atomic<std::uint64_t> seen{0};
    std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
    std::vector<grpc::Status> results(ids.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < ids.size(); ++i)
      ctxs.push_back(std::make_unique<grpc::ClientContext>());
    std::atomic<bool> finished{false};
    for (std::size_t i = 0; i < ids.size(); ++i) {
      threads.emplace_back([&, i] {
        results[i] = stream_events(ids[i], count, seen, *ctxs[i]);
        // One stream ending (count reached, error) ends the others.
        if (!finished.exchange(true)) {
          for (auto& c : ctxs) c->TryCancel();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (auto& st : results) {
      if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) raise(st);
    }
    return 0;
  }

  v1::Lease claim_lease(const std::string& id, std::uint32_t seconds) {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::ClaimRequest req;
    req.set_device_id(id);
    req.set_seconds(seconds);
    v1::ClaimResponse resp;
    auto st = stub().Claim(&ctx, req, &resp);
    if (!st.ok()) raise(st);
    return resp.lease();
  }

  int claim() {
    if (args_.words.size() != 2) throw UsageError{"claim needs exactly one device id"};
    auto seconds = number_option(args_, "seconds", 0, 86400);
    if (!seconds) throw UsageError{"claim needs --seconds N (N >= 1)"};
    auto count = number_option(args_, "count", 0, 1ull << 40);
    auto lease = claim_lease(args_.words[1], static_cast<std::uint32_t>(seconds));
    if (json_) {
      out(to_json_line(lease));
    } else {
      out("claimed " + lease.device_id() + " for " + std::to_string(lease.seconds()) +
          " s (lease " + lease.lease_id() + ", until " + format_time(lease.expires()) + ")");
    }
    // Hold the lease on this connection and show what the device sends.
    std::atomic<std::uint64_t> seen{0};
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    auto st = stream_events(lease.device_id(), count, seen, ctx);
    if (!st.ok() && st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
        st.error_code() != grpc::StatusCode::CANCELLED) {
      raise(st);
    }
    grpc::ClientContext rctx;
    deadline(rctx);
    v1::ReleaseRequest rr;
    rr.set_lease_id(lease.lease_id());
    v1::ReleaseResponse rresp;
    (void)stub().Release(&rctx, rr, &rresp);  // NOT_FOUND when it already expired
    if (!json_) out("released " + lease.device_id());
    return 0;
  }

  int send() {
    if (args_.words.size() != 2) throw UsageError{"send needs exactly one device id"};
    std::string data;
    if (args_.opt("text") && args_.opt("data")) {
      throw UsageError{"send takes --text S or --data HEX, not both"};
    }
    if (auto t = args_.opt("text")) {
      data = *t;
    } else if (auto h = args_.opt("data")) {
      if (h->size() % 2) throw UsageError{"--data must be an even number of hex digits"};
      for (std::size_t i = 0; i < h->size(); i += 2) {
        auto byte = h->substr(i, 2);
        if (byte.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
          throw UsageError{"--data must be hex digits"};
        }
        data += static_cast<char>(std::stoi(byte, nullptr, 16));
      }
    } else {
      throw UsageError{"send needs --text S or --data HEX"};
    }
    auto lease = claim_lease(args_.words[1], 5);
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::SendRequest req;
    req.set_device_id(args_.words[1]);
    req.set_data(data);
    v1::SendResponse resp;
    auto st = stub().Send(&ctx, req, &resp);
    grpc::ClientContext rctx;
    deadline(rctx);
    v1::ReleaseRequest rr;
    rr.set_lease_id(lease.lease_id());
    v1::ReleaseResponse rresp;
    (void)stub().Release(&rctx, rr, &rresp);
    if (!st.ok()) raise(st);
    const auto n = resp.bytes_written();
    out(json_ ? to_json_line(resp) : "sent " + std::to_string(n) + (n == 1 ? " byte" : " bytes"));
    return 0;
  }

  static std::string from_hex(const std::string& h, const char* what) {
    if (h.size() % 2) throw UsageError{std::string(what) + " must be an even number of hex digits"};
    std::string out;
    for (std::size_t i = 0; i < h.size(); i += 2) {
      auto byte = h.substr(i, 2);
      if (byte.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
        throw UsageError{std::string(what) + " must be hex digits"};
      }
      out += static_cast<char>(std::stoi(byte, nullptr, 16));
    }
    return out;
  }

  // Claims `id` for a few seconds on this connection, runs `fn`, releases.
  template <class Fn>
  int with_claim(const std::string& id, Fn fn) {
    auto lease = claim_lease(id, 10);
    grpc::Status st = fn();
    grpc::ClientContext rctx;
    deadline(rctx);
    v1::ReleaseRequest rr;
    rr.set_lease_id(lease.lease_id());
    v1::ReleaseResponse rresp;
    (void)stub().Release(&rctx, rr, &rresp);
    if (!st.ok()) raise(st);
    return 0;
  }

  int transmit() {
    if (args_.words.size() != 2) throw UsageError{"transmit needs exactly one device id"};
    auto apdu = args_.opt("apdu");
    if (!apdu) throw UsageError{"transmit needs --apdu HEX"};
    v1::TransmitRequest req;
    req.set_device_id(args_.words[1]);
    req.set_apdu(from_hex(*apdu, "--apdu"));
    req.set_timeout_ms(static_cast<std::uint32_t>(number_option(args_, "timeout-ms", 0, 60000)));
    v1::TransmitResponse resp;
    return with_claim(req.device_id(), [&] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(70));
      auto st = stub().Transmit(&ctx, req, &resp);
      if (st.ok()) out(json_ ? to_json_line(resp) : hex(resp.response()));
      return st;
    });
  }

  int act() {
    if (args_.words.size() != 3) throw UsageError{"act needs a device id and an action"};
    v1::ActRequest req;
    req.set_device_id(args_.words[1]);
    req.set_action(args_.words[2]);
    if (auto d = args_.opt("data")) req.set_data(from_hex(*d, "--data"));
    if (auto p = args_.opt("param")) {
      std::size_t start = 0;
      while (start <= p->size()) {
        auto comma = p->find(',', start);
        auto kv = p->substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) throw UsageError{"--param takes K=V[,K=V...]"};
        (*req.mutable_params())[kv.substr(0, eq)] = kv.substr(eq + 1);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    req.set_timeout_ms(static_cast<std::uint32_t>(number_option(args_, "timeout-ms", 0, 60000)));
    auto run = [&] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(70));
      v1::ActResponse resp;
      auto st = stub().Act(&ctx, req, &resp);
      if (st.ok()) {
        if (json_) {
          out(to_json_line(resp));
        } else {
          std::string line = "ok";
          if (!resp.data().empty()) line += " data " + hex(resp.data());
          for (auto& [k, v] : resp.values()) line += " " + k + "=" + v;
          out(line);
        }
      }
      return st;
    };
    // Actions that need the lease are run inside a short claim.
    grpc::ClientContext lctx;
    deadline(lctx);
    v1::ListDevicesResponse list;
    bool needs_claim = false;
    if (stub().ListDevices(&lctx, {}, &list).ok()) {
      for (auto& d : list.devices()) {
        if (d.id() != req.device_id()) continue;
        for (auto& a : d.actions()) {
          if (a.name() == req.action()) needs_claim = a.needs_claim();
        }
      }
    }
    if (needs_claim) return with_claim(req.device_id(), run);
    auto st = run();
    if (!st.ok()) raise(st);
    return 0;
  }

  int health() {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::Health h;
    if (args_.flag("run"))
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto st =
        args_.flag("run") ? stub().RunHealthChecks(&ctx, {}, &h) : stub().GetHealth(&ctx, {}, &h);
    if (!st.ok()) raise(st);
    if (json_) {
      out(to_json_line(h));
    } else {
      std::fputs(format_health(h).c_str(), stdout);
    }
    return 0;
  }

  int whoami() {
    grpc::ClientContext ctx;
    deadline(ctx);
    v1::Identity id;
    auto st = stub().WhoAmI(&ctx, {}, &id);
    if (!st.ok()) raise(st);
    if (json_) {
      out(to_json_line(id));
    } else {
      std::string apps;
      for (auto& a : id.apps()) apps += (apps.empty() ? "" : ", ") + a;
      out("uid " + std::to_string(id.uid()) + " gid " + std::to_string(id.gid()) + " pid " +
          std::to_string(id.pid()) + "\nexe " +
          (id.exe_doubt().empty()
               ? id.exe()
               : "- (" + id.exe_seen() + " does not count: " + id.exe_doubt() + ")") +
          "\nsha256 " + id.sha256() + "\nunit " + (id.unit().empty() ? "-" : id.unit()) +
          "\napps " + (apps.empty() ? "(none: not a declared app)" : apps));
    }
    return 0;
  }

  int explain() {
    auto op_name = args_.opt("op");
    auto device = args_.opt("device");
    if (!op_name || !device || !args_.opt("app-uid")) {
      throw UsageError{"policy explain needs --app-uid U --device D --op O"};
    }
    if (!policy::parse_op(*op_name)) {
      throw UsageError{"--op must be one of list, watch, read, claim, write, configure"};
    }
    v1::ExplainRequest req;
    req.set_uid(static_cast<std::uint32_t>(number_option(args_, "app-uid", 0, 4294967295u)));
    req.set_gid(static_cast<std::uint32_t>(number_option(args_, "app-gid", 0, 4294967295u)));
    req.set_exe(args_.opt("exe").value_or(""));
    std::string digest = args_.opt("sha256").value_or("");
    for (auto& ch : digest) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    req.set_sha256(digest);
    req.set_unit(args_.opt("unit").value_or(""));
    req.set_device_id(*device);
    req.set_device_class(args_.opt("class").value_or(""));
    req.set_op(*op_name);
    v1::ExplainResponse resp;
    if (auto file = args_.opt("policy")) {
      auto p = policy::Policy::load_file(*file);
      if (!p) throw Failure{1, p.error().message()};
      policy::Caller c{req.uid(), req.gid(), 0, req.exe(), req.sha256(), req.unit()};
      auto d =
          (*p)->decide(c, {req.device_id(), req.device_class(), {}}, *policy::parse_op(*op_name));
      resp.set_allow(d.allow);
      resp.set_rule(static_cast<std::uint32_t>(d.rule));
      resp.set_line(static_cast<std::uint32_t>(d.line));
      resp.set_policy(d.source);
      resp.set_app(d.app);
      resp.set_message(policy::explain(d, c.uid, *policy::parse_op(*op_name), "'" + *device + "'"));
    } else {
      grpc::ClientContext ctx;
      deadline(ctx);
      auto st = stub().ExplainPolicy(&ctx, req, &resp);
      if (!st.ok()) raise(st);
    }
    out(json_ ? to_json_line(resp)
              : std::string(resp.allow() ? "ALLOW: " : "DENY: ") + resp.message());
    return 0;
  }

  int audit_tail() {
    v1::TailAuditRequest req;
    req.set_count(static_cast<std::uint32_t>(number_option(args_, "count", 20, 1000)));
    req.set_follow(args_.flag("follow"));
    grpc::ClientContext ctx;
    if (!req.follow()) deadline(ctx);
    auto reader = stub().TailAudit(&ctx, req);
    v1::TailAuditResponse r;
    // The log is JSON lines already: each as written (what the chain
    // hashes), else the typed record's JSON mapping.
    while (reader->Read(&r)) out(!r.json().empty() ? r.json() : to_json_line(r.record()));
    auto st = reader->Finish();
    if (!st.ok()) raise(st);
    return 0;
  }

  // Offline: checks the chain of the files given, oldest first. Prints "OK:
  // N records, seq A..B, head <digest>" (exit 0) or the first problem (exit 1).
  int audit_verify() {
    if (args_.opt("count") || args_.flag("follow")) {
      throw UsageError{"audit verify takes files only"};
    }
    std::vector<std::string> files(args_.words.begin() + 2, args_.words.end());
    if (files.empty()) {
      throw UsageError{
          "audit verify needs FILE..., oldest first (audit.jsonl.2 audit.jsonl.1 audit.jsonl)"};
    }
    auto checkpoints = args_.opt("checkpoints");
    if (!checkpoints) {
      if (args_.opt("cert") || args_.opt("key")) {
        throw UsageError{"--cert and --key go with --checkpoints FILE"};
      }
      auto r = agent::verify_audit_files(files);
      out(json_ ? r.json() : r.summary());
      return r.ok ? 0 : 1;
    }
    auto cert = args_.opt("cert"), key = args_.opt("key");
    if (!cert == !key) {
      throw UsageError{"--checkpoints needs the terminal's --cert PEM or its public --key PEM"};
    }
    auto pem = read_small_file(cert ? *cert : *key, ReadOptions{.max = 256 * 1024});
    if (!pem) throw Failure{1, pem.error().message()};
    // --cert may hold several certificates: after key rotations, the
    // terminal's old ones and its current one (each checkpoint verifies
    // with one of them).
    auto keys = [&]() -> Result<std::vector<crypto::PublicKey>> {
      if (key) {
        auto k = crypto::PublicKey::from_pem(*pem);
        if (!k) return std::unexpected(k.error());
        return std::vector<crypto::PublicKey>{std::move(*k)};
      }
      auto certs = crypto::Certificate::all_from_pem(*pem);
      if (!certs) return std::unexpected(certs.error());
      if (certs->empty()) return fail_msg(Errc::invalid_argument, "holds no certificate");
      std::vector<crypto::PublicKey> out;
      for (auto& c : *certs) {
        auto k = c.public_key();
        if (!k) return std::unexpected(k.error());
        out.push_back(std::move(*k));
      }
      return out;
    }();
    if (!keys) throw Failure{1, (cert ? *cert : *key) + ": " + keys.error().message()};
    auto cps = agent::read_checkpoints(*checkpoints);
    if (!cps) throw Failure{1, cps.error().message()};
    auto r = agent::verify_with_checkpoints(files, *cps, *keys);
    out(json_ ? r.json() : r.summary());
    return r.ok ? 0 : 1;
  }

  const Args& args_;
  bool json_;
  std::string socket_;
  int timeout_;
  std::unique_ptr<v1::Gateway::Stub> stub_;
  std::mutex out_mu_;
};

}  // namespace
}  // namespace portier::ctl

int main(int argc, char** argv) {
  using namespace portier::ctl;
  try {
    auto args = parse_args(argc, argv);
    return Ctl(args).run();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "portierctl: %s (see portierctl --help)\n", e.message.c_str());
    return 2;
  } catch (const Failure& f) {
    std::fprintf(stderr, "portierctl: %s\n", f.message.c_str());
    return f.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "portierctl: %s\n", e.what());
    return 1;
  }
}
