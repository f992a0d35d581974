// Idle cost: warrend's RSS and thread count with many open Subscribe
// streams and many candidates, against what a process holding the same
// consumers (rabbitmq-c) or candidates (ZooKeeper C client) directly grows by.
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/scenarios.h"
#include "bench/zk_direct.h"

namespace warren::bench {
namespace {

bool WaitCount(const std::atomic<int>& n, int want, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (n.load() < want) {
    if (absl::Now() > deadline) return false;
    Sleep(absl::Milliseconds(10));
  }
  return true;
}

std::string StatusKey(const grpc::Status& s) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  return absl::StrCat(code >= 0 && code <= 16 ? kNames[code] : "?", " \"",
                      s.error_message(), "\"");
}

struct IdleRows {
  Row* growth;
  Row* total;
  Row* threads;
};

IdleRows AddRows(Env& env, const std::string& what, int n) {
  IdleRows r;
  r.growth = &env.report.Add(
      "idle",
      absl::StrCat("memory added by ", n, " ", what,
                   " (Warren: warrend RSS growth; direct: RSS growth of a "
                   "client process holding them itself)"),
      "MiB", Better::kLower);
  r.total = &env.report.Add(
      "idle", absl::StrCat("warrend RSS with ", n, " ", what, " requested"),
      "MiB", Better::kLower, Target::AtMost(200, "<= 200 MiB"));
  r.threads =
      &env.report.Add("idle",
                      absl::StrCat("threads added by ", n, " ", what,
                                   " (warrend; direct: the client process)"),
                      "threads", Better::kLower, Target::AtMost(0, "constant"));
  r.total->plot = false;
  r.threads->plot = false;
  return r;
}

}  // namespace

absl::Status RunIdle(Env& env) {
  const Options& o = env.options;
  if (o.warrend_pid <= 0) {
    env.report.Finding(
        "idle: skipped, --warrend_pid was not given (the idle figures read "
        "/proc/<pid>/status of warrend)");
    return absl::OkStatus();
  }

  // --- Subscribe streams -------------------------------------------------
  const int n = o.idle_streams;
  const std::string queue = absl::StrCat(o.prefix, ".idle");
  if (absl::Status s = env.admin->DeclareQueue(1, queue); !s.ok()) return s;
  IdleRows sub = AddRows(env, "idle Subscribe streams", n);
  {
    const ProcStatus before = ReadProcStatus(o.warrend_pid);
    auto channels = env.Channels(n);
    std::vector<std::unique_ptr<v1::MessagingService::Stub>> stubs;
    for (auto& ch : channels) {
      stubs.push_back(v1::MessagingService::NewStub(ch));
    }
    std::atomic<int> settled{0};
    std::vector<std::unique_ptr<SubscribeClient>> clients;
    const int64_t t0 = NowNs();
    for (int i = 0; i < n; ++i) {
      clients.push_back(std::make_unique<SubscribeClient>(
          stubs[i % stubs.size()].get(), queue, o.prefetch, 1, nullptr,
          &settled));
      clients.back()->Start();
    }
    const bool all = WaitCount(settled, n, absl::Seconds(600));
    const double setup_s = (NowNs() - t0) / 1e9;
    Sleep(absl::Seconds(2));
    const ProcStatus after = ReadProcStatus(o.warrend_pid);
    int open = 0;
    std::map<std::string, int> failures;
    for (auto& c : clients) {
      if (c->subscribed() && !c->done()) {
        ++open;
      } else if (c->done()) {
        ++failures[StatusKey(c->status())];
      }
    }
    sub.growth->warren.push_back(after.rss_mib - before.rss_mib);
    sub.total->warren.push_back(after.rss_mib);
    sub.threads->warren.push_back(after.threads - before.threads);
    std::string failed;
    for (const auto& [what, count] : failures) {
      absl::StrAppend(&failed, failed.empty() ? "" : "; ", count, " x ", what);
    }
    env.report.Finding(absl::StrFormat(
        "idle Subscribe: %d streams requested over %d connections, %d open "
        "and subscribed after %.1f s%s; %s. warrend: %.1f MiB / %d threads "
        "before, %.1f MiB / %d threads after (%.1f KiB per open stream)",
        n, static_cast<int>(channels.size()), open, setup_s,
        all ? "" : " (not all settled in time)",
        failed.empty() ? "none failed" : absl::StrCat("failed: ", failed),
        before.rss_mib, before.threads, after.rss_mib, after.threads,
        open > 0 ? (after.rss_mib - before.rss_mib) * 1024 / open : 0.0));
    for (auto& c : clients) c->Stop();
    for (auto& c : clients) c->WaitDone(absl::Seconds(120));
    const ProcStatus closed = ReadProcStatus(o.warrend_pid);
    sub.total->notes.push_back(
        absl::StrFormat("after all streams closed: %.1f MiB, %d threads",
                        closed.rss_mib, closed.threads));
  }
  {
    // Direct: the same number of consumers on rabbitmq-c connections of
    // our own, a new connection whenever one is out of channels.
    const ProcStatus before = ReadProcStatus(0);
    std::vector<std::unique_ptr<AmqpConnection>> conns;
    int channel = 0, max = 0, opened = 0;
    absl::Status failure;
    for (int i = 0; i < n && failure.ok(); ++i) {
      if (conns.empty() || channel >= max) {
        auto c = AmqpConnection::Open(o.amqp_url, "bench-direct-idle");
        if (!c.ok()) {
          failure = c.status();
          break;
        }
        conns.push_back(*std::move(c));
        max = conns.back()->channel_max() == 0 ? 65535
                                               : conns.back()->channel_max();
        channel = 0;
      }
      ++channel;
      failure = conns.back()->OpenChannel(static_cast<uint16_t>(channel));
      if (failure.ok()) {
        failure = conns.back()->Consume(static_cast<uint16_t>(channel), queue,
                                        static_cast<uint16_t>(o.prefetch));
      }
      if (failure.ok()) ++opened;
    }
    Sleep(absl::Seconds(1));
    const ProcStatus after = ReadProcStatus(0);
    sub.growth->direct.push_back(after.rss_mib - before.rss_mib);
    sub.threads->direct.push_back(after.threads - before.threads);
    env.report.Finding(absl::StrFormat(
        "idle Subscribe, direct: %d consumers on %d rabbitmq-c connections "
        "(channel_max %d)%s",
        opened, static_cast<int>(conns.size()), max,
        failure.ok() ? "" : absl::StrCat("; stopped: ", failure.message())));
  }
  (void)env.admin->DeleteQueue(1, queue);

  // --- Candidates --------------------------------------------------------
  const int m = o.idle_candidates;
  const int per = std::max(1, o.candidates_per_election);
  IdleRows cand =
      AddRows(env, absl::StrCat("candidates (", per, " per election)"), m);
  {
    const ProcStatus before = ReadProcStatus(o.warrend_pid);
    auto channels = env.Channels(m);
    std::vector<std::unique_ptr<v1::ElectionService::Stub>> stubs;
    for (auto& ch : channels) {
      stubs.push_back(v1::ElectionService::NewStub(ch));
    }
    std::atomic<int> settled{0};
    std::vector<std::unique_ptr<ElectClient>> clients;
    const int64_t t0 = NowNs();
    for (int i = 0; i < m; ++i) {
      clients.push_back(std::make_unique<ElectClient>(
          stubs[i % stubs.size()].get(),
          absl::StrCat(o.prefix, "-idle-", i / per), absl::StrCat("c", i),
          &settled));
      clients.back()->Start();
    }
    const bool all = WaitCount(settled, m, absl::Seconds(600));
    const double setup_s = (NowNs() - t0) / 1e9;
    Sleep(absl::Seconds(2));
    const ProcStatus after = ReadProcStatus(o.warrend_pid);
    int leaders = 0, followers = 0;
    std::map<std::string, int> failures;
    for (auto& c : clients) {
      if (c->done()) {
        ++failures[StatusKey(c->status())];
      } else if (c->elected()) {
        ++leaders;
      } else if (c->following()) {
        ++followers;
      }
    }
    cand.growth->warren.push_back(after.rss_mib - before.rss_mib);
    cand.total->warren.push_back(after.rss_mib);
    cand.threads->warren.push_back(after.threads - before.threads);
    std::string failed;
    for (const auto& [what, count] : failures) {
      absl::StrAppend(&failed, failed.empty() ? "" : "; ", count, " x ", what);
    }
    env.report.Finding(absl::StrFormat(
        "idle candidates: %d candidates in %d elections over %d connections: "
        "%d leaders, %d followers after %.1f s%s; %s. warrend: %.1f MiB / %d "
        "threads before, %.1f MiB / %d threads after",
        m, (m + per - 1) / per, static_cast<int>(channels.size()), leaders,
        followers, setup_s, all ? "" : " (not all settled in time)",
        failed.empty() ? "none failed" : absl::StrCat("failed: ", failed),
        before.rss_mib, before.threads, after.rss_mib, after.threads));
    // Last candidate first, so that no deletion wakes a successor.
    for (auto it = clients.rbegin(); it != clients.rend(); ++it) {
      (*it)->Cancel();
    }
    for (auto& c : clients) c->WaitDone(absl::Seconds(120));
  }
  {
    const ProcStatus before = ReadProcStatus(0);
    auto zk = ZkSession::Connect(o.zk, absl::Seconds(15));
    if (!zk.ok()) return zk.status();
    if (absl::Status s = (*zk)->EnsureParents(o.direct_root + "/x"); !s.ok()) {
      return s;
    }
    int created = 0;
    absl::Status failure;
    std::string predecessor;
    for (int i = 0; i < m && failure.ok(); ++i) {
      const std::string parent = absl::StrCat(o.direct_root, "/idle-", i / per);
      if (i % per == 0) {
        const int rc =
            zoo_create((*zk)->get(), parent.c_str(), "", 0,
                       &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, nullptr, 0);
        if (rc != ZOK && rc != ZNODEEXISTS) {
          failure = ZkError(rc, parent);
          break;
        }
        predecessor.clear();
      }
      char path[512];
      int rc = zoo_create((*zk)->get(), (parent + "/c_").c_str(), "bench", 5,
                          &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, path,
                          sizeof(path));
      if (rc != ZOK) {
        failure = ZkError(rc, "create candidate");
        break;
      }
      if (!predecessor.empty()) {
        Stat stat;
        rc = zoo_wexists((*zk)->get(), predecessor.c_str(),
                         [](zhandle_t*, int, int, const char*, void*) {},
                         nullptr, &stat);
        if (rc != ZOK) {
          failure = ZkError(rc, "exists+watch");
          break;
        }
      }
      predecessor = path;
      ++created;
    }
    Sleep(absl::Seconds(1));
    const ProcStatus after = ReadProcStatus(0);
    cand.growth->direct.push_back(after.rss_mib - before.rss_mib);
    cand.threads->direct.push_back(after.threads - before.threads);
    env.report.Finding(absl::StrFormat(
        "idle candidates, direct: %d ephemeral-sequential nodes with "
        "predecessor watches on one ZooKeeper session%s",
        created,
        failure.ok() ? "" : absl::StrCat("; stopped: ", failure.message())));
  }
  return absl::OkStatus();
}

}  // namespace warren::bench
