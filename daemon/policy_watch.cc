#include "daemon/policy_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/audit_events.h"
#include "common/log.h"
#include "gateway/device_hub.h"
#include "gateway/policy_store.h"

namespace portier::daemon {

PolicyWatch watch_policy(const std::string& path) {
  PolicyWatch w;
  std::filesystem::path p(path);
  w.dir = p.parent_path().string();
  w.name = p.filename().string();
  w.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  // The directory, not the file: editors and config managers replace files
  // by rename, which a watch on the old inode would miss.
  if (w.fd >= 0 && inotify_add_watch(w.fd, w.dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    log_warning("cannot watch " + w.dir + " for policy changes: " + std::strerror(errno) +
                "; reload with SIGHUP");
  }
  return w;
}

bool policy_touched(const PolicyWatch& w) {
  alignas(inotify_event) char buf[4096];
  bool hit = false;
  for (;;) {
    ssize_t n = read(w.fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      if (ev->len && w.name == ev->name) hit = true;
      p += sizeof(inotify_event) + ev->len;
    }
  }
  return hit;
}

Result<void> reload_policy(gateway::PolicyStore& store, gateway::DeviceHub& hub, AuditSink& audit,
                           const char* why) {
  if (auto r = store.reload(); !r) {
    log_error("policy reload (" + std::string(why) +
              ") rejected, old policy stays in force: " + r.error().message());
    audit.record(audit::policy_rejected(store.path(), r.error().message()));
    return r;
  }
  auto st = store.status();
  log_info("policy reloaded (" + std::string(why) + "): generation " +
           std::to_string(st.generation) + ", " + std::to_string(st.rules) + " rules");
  audit.record(audit::policy_loaded(store.path(), "generation " + std::to_string(st.generation)));
  hub.policy_changed();
  return {};
}

}  // namespace portier::daemon
