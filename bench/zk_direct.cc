#include "bench/zk_direct.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace warren::bench {

absl::Status ZkError(int rc, const std::string& what) {
  if (rc == ZOK) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": ", zerror(rc)));
}

void ZkSession::OnSession(zhandle_t* /*zh*/, int type, int state,
                          const char* /*path*/, void* context) {
  auto* self = static_cast<ZkSession*>(context);
  if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE &&
      !self->connected_.HasBeenNotified()) {
    self->connected_.Notify();
  }
}

std::unique_ptr<ZkSession> ZkSession::Start(const std::string& connect) {
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  std::unique_ptr<ZkSession> s(new ZkSession);
  s->zh_ = zookeeper_init(connect.c_str(), &ZkSession::OnSession, 30000,
                          nullptr, s.get(), 0);
  return s;
}

absl::StatusOr<std::unique_ptr<ZkSession>> ZkSession::Connect(
    const std::string& connect, absl::Duration timeout) {
  auto s = Start(connect);
  if (absl::Status st = s->Wait(timeout); !st.ok()) return st;
  return s;
}

absl::Status ZkSession::Wait(absl::Duration timeout) {
  if (zh_ == nullptr) return absl::UnavailableError("zookeeper_init failed");
  if (!connected_.WaitForNotificationWithTimeout(timeout)) {
    return absl::UnavailableError("ZooKeeper session not connected in time");
  }
  return absl::OkStatus();
}

ZkSession::~ZkSession() {
  if (zh_ != nullptr) zookeeper_close(zh_);
}

absl::Status ZkSession::EnsureParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string parent = path.substr(0, slash);
    const int rc = zoo_create(zh_, parent.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE,
                              ZOO_PERSISTENT, nullptr, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) return ZkError(rc, parent);
  }
  return absl::OkStatus();
}

absl::Status ZkSession::Put(const std::string& path, const std::string& value) {
  if (absl::Status s = EnsureParents(path); !s.ok()) return s;
  int rc = zoo_create(zh_, path.c_str(), value.data(),
                      static_cast<int>(value.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_PERSISTENT, nullptr, 0);
  if (rc == ZNODEEXISTS) {
    rc = zoo_set(zh_, path.c_str(), value.data(),
                 static_cast<int>(value.size()), -1);
  }
  return ZkError(rc, path);
}

void ZkSession::DeleteTree(const std::string& path) {
  String_vector children{0, nullptr};
  if (zoo_get_children(zh_, path.c_str(), 0, &children) == ZOK) {
    for (int i = 0; i < children.count; ++i) {
      DeleteTree(absl::StrCat(path, "/", children.data[i]));
    }
    deallocate_String_vector(&children);
  }
  zoo_delete(zh_, path.c_str(), -1);
}

}  // namespace warren::bench
