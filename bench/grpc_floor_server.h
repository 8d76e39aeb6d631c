// The floor for scan_latency_bench: the least a gRPC 1.51 gateway can do on
// this machine. A process that reads frames from a pty (raw mode, like the
// serial driver) and hands each to every Subscribe stream, with nothing else:
// no identity, no policy, no hub, no decoding. It answers GetHealth with its
// subscriber list so the bench can wait for them. portierd's figure beside
// this one shows what portierd itself adds.
#pragma once

#include <string>

namespace portier::bench {

// main() of `scan_latency_bench --floor-server SOCKET PTY`.
int run_floor_server(const std::string& socket, const std::string& pty);

}  // namespace portier::bench
