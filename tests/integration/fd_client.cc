// Test client: connects to portierd's socket itself, optionally exec()s
// another program that inherits the connected socket, and lists devices over
// that socket. Used to show that an exec after connect loses the identity.
//   fd_client SOCKET [--exec OTHER]     connect, (exec OTHER --fd N), list
//   fd_client --fd N                    list over the inherited socket N
//   fd_client SOCKET --subscribe DEVICE --exec OTHER
//                                       subscribe over gRPC, then exec OTHER --hold N
//   fd_client --hold N                  keep socket N open, reading, until EOF
//   fd_client SOCKET --pass             connect, hand the socket to a child and
//                                       close it here (staying alive); the child lists
#include <fcntl.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "portier/v1/gateway.grpc.pb.h"

namespace {

int list_over(int fd) {
  auto ch = grpc::CreateInsecureChannelFromFd("portier", fd);
  auto stub = portier::v1::Gateway::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  portier::v1::ListDevicesResponse r;
  auto st = stub->ListDevices(&ctx, {}, &r);
  if (!st.ok()) {
    std::fprintf(stderr, "%d: %s\n", static_cast<int>(st.error_code()), st.error_message().c_str());
    return st.error_code() == grpc::StatusCode::PERMISSION_DENIED ? 3 : 1;
  }
  std::printf("devices: %d\n", r.devices_size());
  return 0;
}

}  // namespace

int hold(int fd) {
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20000) != 1) return 6;  // bounded: never outlives its test
    if (read(fd, buf, sizeof(buf)) <= 0) return 0;
  }
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--fd") return list_over(std::stoi(argv[2]));
  if (argc == 3 && std::string(argv[1]) == "--hold") return hold(std::stoi(argv[2]));
  if (argc == 6 && std::string(argv[2]) == "--subscribe") {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 4;
    int keep = dup(fd);  // gRPC owns fd; the dup survives exec
    auto ch = grpc::CreateInsecureChannelFromFd("portier", fd);
    auto stub = portier::v1::Gateway::NewStub(ch);
    grpc::ClientContext ctx;
    portier::v1::SubscribeRequest req;
    req.set_device_id(argv[3]);
    auto reader = stub->Subscribe(&ctx, req);
    portier::v1::PeripheralEvent ev;
    if (!reader->Read(&ev)) return 3;  // subscribed and receiving
    std::printf("subscribed\n");
    std::fflush(stdout);
    std::string n = std::to_string(keep);
    execl(argv[5], argv[5], "--hold", n.c_str(), static_cast<char*>(nullptr));
    return 1;
  }
  if (argc == 3 && std::string(argv[2]) == "--pass") {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 4;
    int go[2];
    if (pipe(go) != 0) return 1;
    pid_t child = fork();
    if (child == 0) {
      close(go[1]);
      char c;
      if (read(go[0], &c, 1) != 1) _exit(1);  // the connector has let go of the socket
      _exit(list_over(fd));
    }
    // The connector stays alive but no longer holds the connection, as a
    // process that got the connector's pid after it exited would.
    close(fd);
    close(go[0]);
    if (write(go[1], "x", 1) != 1) return 1;
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  if (argc != 2 && argc != 4) return 2;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);  // no CLOEXEC: an exec keeps it
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("connect");
    return 4;
  }
  if (argc == 4) {
    // Wait for the server's HTTP/2 SETTINGS: the daemon sends them only after
    // it has identified this process, so the exec below happens after that.
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) return 5;
    std::string n = std::to_string(fd);
    execl(argv[3], argv[3], "--fd", n.c_str(), static_cast<char*>(nullptr));
    std::perror("exec");
    return 1;
  }
  return list_over(fd);
}
