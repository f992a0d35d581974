// ConfigService: GetConfig (cached and consistent) against pipelined
// zoo_aget (and zoo_async + zoo_aget), and WatchConfig fan-out against one
// ZooKeeper session (and data watch) per watcher.
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/scenarios.h"
#include "bench/zk_direct.h"

namespace warren::bench {
namespace {

// `concurrency` calls always in flight, each slot recording its latencies
// (a slot's calls run one after another, so its vector needs no lock).
class LoadSlots {
 public:
  explicit LoadSlots(int n) : latencies_(n) {}
  std::atomic<bool> stop{false};
  std::atomic<bool> recording{false};
  std::atomic<int64_t> completed{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int> active{0};
  void Done(int slot, int64_t started, bool ok) {
    const int64_t now = NowNs();
    if (!ok) {
      failed.fetch_add(1);
    } else {
      completed.fetch_add(1, std::memory_order_relaxed);
      if (recording.load(std::memory_order_relaxed)) {
        latencies_[slot].push_back(NsToMs(now - started));
      }
    }
  }
  std::vector<double> Latencies() {
    std::vector<double> all;
    for (auto& v : latencies_) all.insert(all.end(), v.begin(), v.end());
    return all;
  }
  void WaitIdle() {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (active.load() > 0 && absl::Now() < deadline) {
      Sleep(absl::Milliseconds(2));
    }
  }

 private:
  std::vector<std::vector<double>> latencies_;
};

struct LoadResult {
  double rate = 0;
  double p50 = 0;
  double p99 = 0;
  CpuUsage cpu;
};

// Runs `issue(slot)` in `concurrency` slots for warm-up + duration.
template <typename Issue>
LoadResult RunLoad(const Options& o, LoadSlots& slots, int concurrency,
                   Issue issue) {
  slots.active.store(concurrency);
  for (int i = 0; i < concurrency; ++i) issue(i);
  Sleep(std::min(o.warmup, absl::Milliseconds(500)));
  CpuMeter meter(o);
  meter.Start();
  slots.recording.store(true);
  const int64_t c0 = slots.completed.load();
  const int64_t t0 = NowNs();
  Sleep(o.config_duration);
  const int64_t c1 = slots.completed.load();
  const int64_t t1 = NowNs();
  slots.recording.store(false);
  LoadResult r;
  r.cpu = meter.Stop();
  slots.stop.store(true);
  slots.WaitIdle();
  r.rate = static_cast<double>(c1 - c0) / ((t1 - t0) / 1e9);
  std::vector<double> lat = slots.Latencies();
  r.p50 = Quantile(lat, 0.5);
  r.p99 = Quantile(lat, 0.99);
  return r;
}

LoadResult WarrenGets(Env& env, const std::string& key, bool consistent,
                      int concurrency) {
  LoadSlots slots(concurrency);
  v1::GetConfigRequest request;
  request.set_key(key);
  request.set_consistent(consistent);
  v1::ConfigService::Stub* stub = env.config.get();
  std::function<void(int)> issue = [&](int slot) {
    struct Call {
      grpc::ClientContext context;
      v1::GetConfigResponse response;
      int64_t started;
    };
    auto* call = new Call;
    call->started = NowNs();
    stub->async()->GetConfig(&call->context, &request, &call->response,
                             [&, slot, call](grpc::Status status) {
                               slots.Done(slot, call->started, status.ok());
                               delete call;
                               if (slots.stop.load()) {
                                 slots.active.fetch_sub(1);
                               } else {
                                 issue(slot);
                               }
                             });
  };
  return RunLoad(env.options, slots, concurrency, issue);
}

// The direct side: zoo_aget (after zoo_async for a consistent read, issued
// back to back: the session's order makes the get follow the sync).
struct DirectGetContext {
  LoadSlots* slots;
  zhandle_t* zh;
  const std::string* path;
  bool consistent;
  int slot;
  int64_t started;
};

void IssueDirect(DirectGetContext* c);

void OnDirectData(int rc, const char*, int, const Stat*, const void* data) {
  auto* c = static_cast<DirectGetContext*>(const_cast<void*>(data));
  c->slots->Done(c->slot, c->started, rc == ZOK);
  if (c->slots->stop.load()) {
    c->slots->active.fetch_sub(1);
    return;
  }
  IssueDirect(c);
}

void OnDirectSync(int, const char*, const void*) {}

void IssueDirect(DirectGetContext* c) {
  c->started = NowNs();
  if (c->consistent) {
    zoo_async(c->zh, c->path->c_str(), OnDirectSync, nullptr);
  }
  if (zoo_aget(c->zh, c->path->c_str(), 0, OnDirectData, c) != ZOK) {
    c->slots->Done(c->slot, c->started, false);
    c->slots->active.fetch_sub(1);
  }
}

LoadResult DirectGets(Env& env, ZkSession& zk, const std::string& path,
                      bool consistent, int concurrency) {
  LoadSlots slots(concurrency);
  std::vector<DirectGetContext> contexts(concurrency);
  for (int i = 0; i < concurrency; ++i) {
    contexts[i] = DirectGetContext{&slots, zk.get(), &path, consistent, i, 0};
  }
  return RunLoad(env.options, slots, concurrency,
                 [&](int slot) { IssueDirect(&contexts[slot]); });
}

absl::Status Put(Env& env, const std::string& key, const std::string& value,
                 int64_t* version = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::PutConfigRequest request;
  request.set_key(key);
  request.set_value(value);
  v1::PutConfigResponse response;
  grpc::Status s = env.config->PutConfig(&context, request, &response);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("PutConfig ", key, ": ", s.error_message()));
  }
  if (version != nullptr) *version = response.entry().version();
  return absl::OkStatus();
}

}  // namespace

absl::Status RunConfig(Env& env) {
  const Options& o = env.options;
  const std::string key = absl::StrCat("bench/", o.prefix, "/get");
  const std::string path = absl::StrCat(o.direct_root, "/get");
  const std::string value(o.config_value_size, 'v');
  if (absl::Status s = Put(env, key, value); !s.ok()) return s;
  auto zk = ZkSession::Connect(o.zk, absl::Seconds(15));
  if (!zk.ok()) return zk.status();
  if (absl::Status s = (*zk)->Put(path, value); !s.ok()) return s;

  // A watch on the key makes warrend serve it from its cache.
  FanoutTracker unused;
  std::atomic<int> initial{0};
  WatchClient watch(env.config.get(), key, &unused, &initial);
  watch.Start();
  for (int i = 0; i < 1000 && initial.load() == 0; ++i) {
    Sleep(absl::Milliseconds(10));
  }
  if (initial.load() == 0) return absl::UnavailableError("WatchConfig failed");

  const int c = o.config_concurrency;
  struct Variant {
    bool consistent;
    Row* rate;
    Row* latency;
  };
  std::vector<Variant> variants;
  for (bool consistent : {false, true}) {
    const std::string name = consistent ? "consistent" : "cached (watched key)";
    const std::string direct = consistent ? "zoo_async + zoo_aget" : "zoo_aget";
    Variant v;
    v.consistent = consistent;
    v.rate = &env.report.Add(
        "config",
        absl::StrCat("GetConfig ", name, ", ", c,
                     " in flight (direct: ", direct, ", ", c, " pipelined)"),
        "calls/s", Better::kHigher,
        consistent ? Target::None()
                   : Target::RatioAtLeast(
                         20, ">= 20x direct ZooKeeper get round trips"));
    v.latency = &env.report.Add("config",
                                absl::StrCat("GetConfig ", name,
                                             ", one at a time: p50 round trip "
                                             "(direct: ",
                                             direct, ")"),
                                "ms", Better::kLower);
    v.latency->plot = true;
    variants.push_back(v);
  }
  for (int run = 0; run < o.runs; ++run) {
    for (const Variant& v : variants) {
      for (int side = 0; side < 2; ++side) {
        const bool warren_side = (side == 0) == (run % 2 == 0);
        LoadResult pipelined =
            warren_side ? WarrenGets(env, key, v.consistent, c)
                        : DirectGets(env, **zk, path, v.consistent, c);
        LoadResult single = warren_side
                                ? WarrenGets(env, key, v.consistent, 1)
                                : DirectGets(env, **zk, path, v.consistent, 1);
        Row& rate = *v.rate;
        Row& lat = *v.latency;
        (warren_side ? rate.warren : rate.direct).push_back(pipelined.rate);
        (warren_side ? rate.warren_cpu : rate.direct_cpu)
            .push_back(pipelined.cpu);
        (warren_side ? lat.warren : lat.direct).push_back(single.p50);
        (warren_side ? lat.warren_cpu : lat.direct_cpu).push_back(single.cpu);
      }
    }
  }
  for (const Variant& v : variants) {
    if (!v.consistent) {
      v.rate->notes.push_back(
          "the issue's 20x is about a cache hit versus a ZooKeeper round "
          "trip; on loopback a gRPC round trip costs about what a ZooKeeper "
          "one does, so compare the one-at-a-time latencies too");
    }
  }
  watch.Cancel();
  watch.WaitDone(absl::Seconds(10));
  (*zk)->DeleteTree(o.direct_root + "/get");
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Fan-out.

namespace {

struct DirectWatcher {
  zhandle_t* zh;
  std::string path;
  FanoutTracker* tracker;
  std::atomic<int>* initial;
  int64_t seen_version = -1;  // on the session's completion thread only
};

void OnWatchedData(int rc, const char*, int, const Stat* stat,
                   const void* data);

void OnWatch(zhandle_t* zh, int type, int, const char*, void* context) {
  if (type != ZOO_CHANGED_EVENT) return;
  auto* w = static_cast<DirectWatcher*>(context);
  // Re-arm and read the new value: a watcher "has it" once it has the data.
  zoo_awget(zh, w->path.c_str(), OnWatch, w, OnWatchedData, w);
}

void OnWatchedData(int rc, const char*, int, const Stat* stat,
                   const void* data) {
  auto* w = static_cast<DirectWatcher*>(const_cast<void*>(data));
  if (rc != ZOK) return;
  const int64_t now = NowNs();
  if (w->seen_version < 0) w->initial->fetch_add(1);
  const int64_t target = w->tracker->target_version.load();
  if (target >= 0 && w->seen_version < target && stat->version >= target) {
    w->tracker->Reach(now);
  }
  w->seen_version = std::max<int64_t>(w->seen_version, stat->version);
}

bool WaitCount(const std::atomic<int>& n, int want, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (n.load() < want) {
    if (absl::Now() > deadline) return false;
    Sleep(absl::Microseconds(200));
  }
  return true;
}

}  // namespace

absl::Status RunFanout(Env& env) {
  const Options& o = env.options;
  const int n = o.watchers;
  Row& row = env.report.Add(
      "fan-out",
      absl::StrCat("WatchConfig fan-out: one put, ", n,
                   " watchers, time until the last has it (direct: ",
                   o.watch_sessions > 0 ? o.watch_sessions : n,
                   " ZooKeeper sessions with a data watch, re-read on fire)"),
      "ms", Better::kLower, Target::AtMost(50, "<= 50 ms"));
  row.notes.push_back(absl::StrCat(
      "each run is one put (", o.fanout_puts,
      " per side), timed from just before the put to the last watcher's "
      "event (Warren) or data read after its watch fired (direct)"));

  // Warren side: n WatchConfig streams over several connections.
  const std::string key = absl::StrCat("bench/", o.prefix, "/fanout");
  int64_t version = 0;
  if (absl::Status s = Put(env, key, "v0", &version); !s.ok()) return s;
  {
    FanoutTracker tracker;
    std::atomic<int> initial{0};
    auto channels = env.Channels(n);
    std::vector<std::unique_ptr<v1::ConfigService::Stub>> stubs;
    for (auto& ch : channels) stubs.push_back(v1::ConfigService::NewStub(ch));
    std::vector<std::unique_ptr<WatchClient>> watchers;
    for (int i = 0; i < n; ++i) {
      watchers.push_back(std::make_unique<WatchClient>(
          stubs[i % stubs.size()].get(), key, &tracker, &initial));
      watchers.back()->Start();
    }
    const bool ready = WaitCount(initial, n, absl::Seconds(120));
    if (!ready) {
      row.notes.push_back(absl::StrCat("Warren: only ", initial.load(), " of ",
                                       n, " watchers started"));
    }
    for (int i = 0; ready && i < o.fanout_puts; ++i) {
      Sleep(absl::Milliseconds(200));
      tracker.reached.store(0);
      tracker.last_ns.store(0);
      tracker.target_version.store(version + 1);
      CpuMeter meter(o);
      meter.Start();
      const int64_t t0 = NowNs();
      if (absl::Status s = Put(env, key, absl::StrCat("v", i + 1), &version);
          !s.ok()) {
        return s;
      }
      if (!WaitCount(tracker.reached, n, absl::Seconds(30))) {
        row.notes.push_back(absl::StrCat("Warren put ", i + 1, ": only ",
                                         tracker.reached.load(), " of ", n,
                                         " watchers heard of it in 30 s"));
        continue;
      }
      row.warren_cpu.push_back(meter.Stop());
      row.warren.push_back(NsToMs(tracker.last_ns.load() - t0));
    }
    for (auto& w : watchers) w->Cancel();
    for (auto& w : watchers) w->WaitDone(absl::Seconds(30));
  }

  // Direct side: one session per watcher (or watch_sessions sessions).
  const int sessions = o.watch_sessions > 0 ? std::min(o.watch_sessions, n) : n;
  const std::string path = absl::StrCat(o.direct_root, "/fanout");
  auto writer = ZkSession::Connect(o.zk, absl::Seconds(15));
  if (!writer.ok()) return writer.status();
  if (absl::Status s = (*writer)->Put(path, "v0"); !s.ok()) return s;
  {
    std::vector<std::unique_ptr<ZkSession>> zks;
    for (int i = 0; i < sessions; ++i) zks.push_back(ZkSession::Start(o.zk));
    for (auto& z : zks) {
      if (absl::Status s = z->Wait(absl::Seconds(60)); !s.ok()) return s;
    }
    FanoutTracker tracker;
    std::atomic<int> initial{0};
    std::vector<std::unique_ptr<DirectWatcher>> watchers;
    for (int i = 0; i < n; ++i) {
      zhandle_t* zh = zks[i % sessions]->get();
      watchers.push_back(std::make_unique<DirectWatcher>(
          DirectWatcher{zh, path, &tracker, &initial}));
      zoo_awget(zh, path.c_str(), OnWatch, watchers.back().get(), OnWatchedData,
                watchers.back().get());
    }
    if (!WaitCount(initial, n, absl::Seconds(60))) {
      return absl::UnavailableError("direct watchers did not all start");
    }
    Stat stat;
    int len = 0;
    if (int rc =
            zoo_get((*writer)->get(), path.c_str(), 0, nullptr, &len, &stat);
        rc != ZOK) {
      return ZkError(rc, path);
    }
    int current = stat.version;
    for (int i = 0; i < o.fanout_puts; ++i) {
      Sleep(absl::Milliseconds(200));
      tracker.reached.store(0);
      tracker.last_ns.store(0);
      tracker.target_version.store(current + 1);
      CpuMeter meter(o);
      meter.Start();
      const std::string value = absl::StrCat("v", i + 1);
      const int64_t t0 = NowNs();
      if (int rc = zoo_set2((*writer)->get(), path.c_str(), value.data(),
                            static_cast<int>(value.size()), -1, &stat);
          rc != ZOK) {
        return ZkError(rc, path);
      }
      current = stat.version;
      if (!WaitCount(tracker.reached, n, absl::Seconds(30))) {
        row.notes.push_back(absl::StrCat("direct put ", i + 1, ": only ",
                                         tracker.reached.load(), " of ", n,
                                         " watchers heard of it in 30 s"));
        continue;
      }
      row.direct_cpu.push_back(meter.Stop());
      row.direct.push_back(NsToMs(tracker.last_ns.load() - t0));
    }
    zks.clear();  // closes the sessions before the watchers go
  }
  (*writer)->DeleteTree(path);
  return absl::OkStatus();
}

}  // namespace warren::bench
