#include "stream_quota.h"

namespace portier::gateway {

StreamQuota::Slot::Slot(StreamQuota& quota, std::shared_ptr<Connection> conn)
    : quota_(quota), conn_(std::move(conn)) {}

StreamQuota::Slot::~Slot() { quota_.give_back(*conn_); }

std::unique_ptr<StreamQuota::Slot> StreamQuota::take(const std::shared_ptr<Connection>& conn,
                                                     std::string* why) {
  std::lock_guard lock(mu_);
  if (conn->open_streams >= limits_.per_connection) {
    *why = "this connection already has " + std::to_string(limits_.per_connection) +
           " open streams; end one first";
    return nullptr;
  }
  int& mine = per_principal_[conn->principal];
  const bool declared = conn->declared;
  const int limit = declared ? limits_.per_app : limits_.per_undeclared_uid;
  int& pool = declared ? declared_ : undeclared_;
  const int pool_limit = declared ? limits_.declared_total : limits_.undeclared_total;
  if (mine >= limit) {
    *why = (declared ? "app '" + conn->principal.substr(4) + "'"
                     : "uid " + conn->principal.substr(4) + " (no declared app)") +
           " already has " + std::to_string(mine) + " open streams (its limit); end one first";
  } else if (pool >= pool_limit) {
    *why = std::to_string(pool) + " streams of " +
           (declared ? "declared apps" : "undeclared callers") + " are open; retry later";
  }
  if (!why->empty()) {
    if (mine == 0) per_principal_.erase(conn->principal);
    return nullptr;
  }
  ++mine;
  ++pool;
  ++conn->open_streams;
  return std::make_unique<Slot>(*this, conn);
}

void StreamQuota::give_back(Connection& conn) {
  std::lock_guard lock(mu_);
  if (auto it = per_principal_.find(conn.principal); it != per_principal_.end()) {
    if (--it->second <= 0) per_principal_.erase(it);
  }
  --(conn.declared ? declared_ : undeclared_);
  --conn.open_streams;
}

int StreamQuota::open() const {
  std::lock_guard lock(mu_);
  return declared_ + undeclared_;
}

}  // namespace portier::gateway
