// Election failover: the leader resigns (or its stream ends) and the next
// candidate is told it leads, against the raw ZooKeeper recipe step: the
// leader's ephemeral node is deleted and the next candidate's predecessor
// watch fires in its own session.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/scenarios.h"
#include "bench/zk_direct.h"

namespace warren::bench {
namespace {

enum class End { kResign, kCancel };

absl::StatusOr<double> WarrenFailover(Env& env, const std::string& election,
                                      End how) {
  ElectClient leader(env.election.get(), election, "leader");
  leader.Start();
  if (!leader.WaitElected(absl::Seconds(10))) {
    return absl::UnavailableError(
        absl::StrCat("first candidate not elected: ",
                     leader.WaitDone(absl::Seconds(5)).error_message()));
  }
  ElectClient next(env.election.get(), election, "next");
  next.Start();
  if (!next.WaitFollowing(absl::Seconds(10))) {
    leader.Cancel();
    leader.WaitDone(absl::Seconds(10));
    return absl::UnavailableError(
        absl::StrCat("second candidate not following: ",
                     next.WaitDone(absl::Seconds(5)).error_message()));
  }
  // Let the follower's predecessor watch settle (it is set before
  // "following" is sent, but give the server a moment of quiet).
  Sleep(absl::Milliseconds(50));
  const int64_t t0 = NowNs();
  if (how == End::kResign) {
    leader.Resign();
  } else {
    leader.Cancel();
  }
  const bool elected = next.WaitElected(absl::Seconds(30));
  const int64_t t1 = next.elected_ns();
  leader.WaitDone(absl::Seconds(10));
  next.Cancel();
  next.WaitDone(absl::Seconds(10));
  if (!elected)
    return absl::DeadlineExceededError("next candidate not elected");
  return NsToMs(t1 - t0);
}

struct RawWatch {
  absl::Notification fired;
  std::atomic<int64_t> fired_ns{0};
  std::atomic<int64_t> children_ns{0};
  absl::Notification children;
  std::string parent;
};

void OnChildren(int, const String_vector*, const void* data) {
  auto* w = static_cast<RawWatch*>(const_cast<void*>(data));
  w->children_ns.store(NowNs());
  w->children.Notify();
}

void OnPredecessorGone(zhandle_t* zh, int type, int, const char*,
                       void* context) {
  if (type != ZOO_DELETED_EVENT) return;
  auto* w = static_cast<RawWatch*>(context);
  w->fired_ns.store(NowNs());
  w->fired.Notify();
  // What a full recipe does next: list the children to confirm it is first.
  zoo_aget_children(zh, w->parent.c_str(), 0, OnChildren, w);
}

void IgnoreVoid(int, const void*) {}

struct RawResult {
  double watch_ms = 0;
  double confirmed_ms = 0;
};

absl::StatusOr<RawResult> DirectFailover(ZkSession& a, ZkSession& b,
                                         const std::string& parent) {
  int rc = zoo_create(a.get(), parent.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_CONTAINER, nullptr, 0);
  if (rc != ZOK && rc != ZNODEEXISTS) return ZkError(rc, parent);
  char a_path[512], b_path[512];
  const std::string prefix = parent + "/c_";
  rc = zoo_create(a.get(), (prefix + "a-").c_str(), "bench", 5,
                  &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, a_path,
                  sizeof(a_path));
  if (rc != ZOK) return ZkError(rc, "create leader");
  rc = zoo_create(b.get(), (prefix + "b-").c_str(), "bench", 5,
                  &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, b_path,
                  sizeof(b_path));
  if (rc != ZOK) return ZkError(rc, "create next");
  // The next candidate lists the children and watches its predecessor.
  String_vector children{0, nullptr};
  rc = zoo_get_children(b.get(), parent.c_str(), 0, &children);
  if (rc != ZOK) return ZkError(rc, "get_children");
  deallocate_String_vector(&children);
  RawWatch watch;
  watch.parent = parent;
  Stat stat;
  rc = zoo_wexists(b.get(), a_path, OnPredecessorGone, &watch, &stat);
  if (rc != ZOK) return ZkError(rc, "exists+watch");
  Sleep(absl::Milliseconds(50));
  const int64_t t0 = NowNs();
  rc = zoo_adelete(a.get(), a_path, -1, IgnoreVoid, nullptr);
  if (rc != ZOK) return ZkError(rc, "delete leader");
  if (!watch.fired.WaitForNotificationWithTimeout(absl::Seconds(30)) ||
      !watch.children.WaitForNotificationWithTimeout(absl::Seconds(30))) {
    return absl::DeadlineExceededError("predecessor watch did not fire");
  }
  zoo_delete(b.get(), b_path, -1);
  RawResult r;
  r.watch_ms = NsToMs(watch.fired_ns.load() - t0);
  r.confirmed_ms = NsToMs(watch.children_ns.load() - t0);
  return r;
}

}  // namespace

absl::Status RunFailover(Env& env) {
  const Options& o = env.options;
  Row& resign = env.report.Add(
      "failover",
      "Elect: leader sends resign -> next candidate's elected (direct: delete "
      "leader node -> predecessor watch fires)",
      "ms", Better::kLower, Target::AddedAtMost(5, "<= raw watch + 5 ms"));
  Row& cancel = env.report.Add(
      "failover",
      "Elect: leader's stream cancelled -> next candidate's elected (direct: "
      "same)",
      "ms", Better::kLower, Target::AddedAtMost(5, "<= raw watch + 5 ms"));
  auto a = ZkSession::Connect(o.zk, absl::Seconds(15));
  if (!a.ok()) return a.status();
  auto b = ZkSession::Connect(o.zk, absl::Seconds(15));
  if (!b.ok()) return b.status();
  if (absl::Status s = (*a)->EnsureParents(o.direct_root + "/x"); !s.ok()) {
    return s;
  }
  std::vector<double> confirmed;
  for (int i = 0; i < o.failovers; ++i) {
    for (Row* row : {&resign, &cancel}) {
      const End how = row == &resign ? End::kResign : End::kCancel;
      const std::string election = absl::StrCat(
          o.prefix, "-failover-", i, how == End::kResign ? "r" : "c");
      auto w = WarrenFailover(env, election, how);
      if (w.ok()) {
        row->warren.push_back(*w);
      } else {
        row->notes.push_back(absl::StrCat("Warren failover ", i + 1, ": ",
                                          w.status().message()));
      }
      auto d = DirectFailover(**a, **b,
                              absl::StrCat(o.direct_root, "/election-", i,
                                           how == End::kResign ? "r" : "c"));
      if (d.ok()) {
        row->direct.push_back(d->watch_ms);
        confirmed.push_back(d->confirmed_ms);
      } else {
        row->notes.push_back(absl::StrCat("direct failover ", i + 1, ": ",
                                          d.status().message()));
      }
    }
  }
  resign.notes.push_back(absl::StrFormat(
      "each run is one failover (%d per row and side). The direct figure is "
      "the raw predecessor-watch notification; with the getChildren a real "
      "recipe needs before it may call itself leader, the direct side takes "
      "%.3f ms (median)",
      o.failovers, Median(confirmed)));
  return absl::OkStatus();
}

}  // namespace warren::bench
