#include "server/lock/lock_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/election/candidate_node.h"
#include "server/zk/zk_acl.h"

namespace warren::lock {

namespace v1 = ::warren::v1;

std::string EncodeAcquire(const LockRequestParams& params) {
  v1::Acquire acquire;
  acquire.set_name(params.name);
  acquire.set_holder_id(params.holder_id);
  acquire.set_value(params.value);
  acquire.set_limit(params.limit);
  return acquire.SerializeAsString();
}

namespace {

uint32_t EffectiveLimit(uint32_t limit) { return std::max<uint32_t>(limit, 1); }

}  // namespace

absl::Status CheckLimit(const LockRequestParams& params,
                        const std::string& first_data) {
  v1::Acquire first;
  // A node another client wrote with foreign data counts as a mutex's.
  (void)first.ParseFromString(first_data);
  const uint32_t held = EffectiveLimit(first.limit());
  if (held == EffectiveLimit(params.limit)) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("acquire.limit: lock ", params.name, " has limit ", held,
                   ", not ", params.limit));
}

absl::StatusOr<v1::GetLockResponse> ReadLock(zk::ZkSync& zk,
                                             const std::string& name,
                                             const std::string& path) {
  v1::GetLockResponse lock;
  auto children = zk.GetChildren(path);
  if (!children.ok()) {
    if (zk::ZkErrorOf(children.status()) == zk::ZkError::kNoNode) return lock;
    return children.status();
  }
  uint32_t limit = 0;
  for (const std::string& node :
       election::SortCandidates(std::move(children->names))) {
    if (limit != 0 && static_cast<uint32_t>(lock.holders_size()) >= limit) {
      // Waiters are counted, not read: one read per holder at most. A node
      // of the candidates' form that no session holds would count here.
      lock.set_waiting(lock.waiting() + 1);
      continue;
    }
    auto data = zk.Get(absl::StrCat(path, "/", node));
    if (!data.ok()) {
      // Gone between the two reads: released meanwhile.
      if (zk::ZkErrorOf(data.status()) == zk::ZkError::kNoNode) continue;
      return data.status();
    }
    if (!election::IsSessionOwned(data->stat.ephemeral_owner)) continue;
    v1::Acquire acquire;
    (void)acquire.ParseFromString(data->value);
    if (limit == 0) limit = EffectiveLimit(acquire.limit());
    v1::LockHolder* holder = lock.add_holders();
    holder->set_name(name);
    holder->set_holder_id(acquire.holder_id());
    holder->set_value(acquire.value());
    holder->set_fencing_token(static_cast<uint64_t>(data->stat.czxid));
    *holder->mutable_acquired_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
            data->stat.ctime_ms);
  }
  lock.set_limit(limit);
  return lock;
}

LockManager::LockManager(zk::ZkClient& zk, const std::string& root)
    : zk_(zk), base_(root == "/" ? "/locks" : absl::StrCat(root, "/locks")) {
  listener_id_ = zk_.AddSessionListener([this](zk::SessionState state) {
    for (const auto& c : candidacies_.Live()) c->OnSessionState(state);
  });
}

LockManager::~LockManager() { zk_.RemoveSessionListener(listener_id_); }

std::string LockManager::PathOf(const std::string& name) const {
  return absl::StrCat(base_, "/", name);
}

absl::Status LockManager::EnsureBase(absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  absl::Status ensured = sync.EnsurePath(base_);
  if (!ensured.ok()) return ensured;
  // A locks node that existed already may belong to another identity: say
  // so now, not at the first Lock.
  return zk::CheckAccess(zk_, base_, deadline);
}

std::shared_ptr<election::Candidacy> LockManager::Acquire(
    const LockRequestParams& params,
    std::shared_ptr<election::CandidacyObserver> observer) {
  election::CandidacyParams recipe;
  recipe.name = params.name;
  recipe.path = PathOf(params.name);
  recipe.candidate_id = params.holder_id;
  recipe.value = params.value;
  recipe.holders = EffectiveLimit(params.limit);
  // The value never changes on a lock: the data is the request.
  recipe.encode = [params](const std::string&, absl::Time) {
    return EncodeAcquire(params);
  };
  recipe.check_first = [params](const std::string& first_data) {
    return CheckLimit(params, first_data);
  };
  recipe.since_creation = true;
  recipe.report_position_changes = true;
  recipe.kind = "lock";
  recipe.expired_hint = "acquire again";
  auto candidacy =
      election::Candidacy::Start(zk_, std::move(recipe), std::move(observer));
  candidacies_.Add(candidacy);
  return candidacy;
}

}  // namespace warren::lock
