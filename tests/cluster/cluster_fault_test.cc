// The cluster fault suite: three warrend replicas over a three-node
// ZooKeeper ensemble and a three-node RabbitMQ cluster (scripts/cluster.sh,
// loopback only), clients that keep working throughout (tests/cluster/
// workload.h), and faults one at a time, each repeated, each followed by
// full health before the next:
//   kill -9 of the ZooKeeper leader; of a follower; loss of quorum (2 of 3
//   killed) longer than the session timeout; kill -9 and SIGSTOP (20 s) of
//   the RabbitMQ node that leads the quorum queue; kill -9 of the replica
//   whose candidate leads; SIGSTOP of it past the session timeout; rolling
//   restarts of every replica, every RabbitMQ node and every ZooKeeper node.
// And a lock holder's replica frozen past the session timeout: the next
// holder acquires only once the frozen one's node is gone, and the frozen
// holder's late fenced writes are refused after it resumes.
// After each fault the observer's log must show: no confirmed message lost
// (duplicates are counted), no acknowledged config write lost and every
// watcher at the latest value, no two candidates' leases overlapping,
// no call or stream failing with a status no fault explains,
// fencing tokens growing, no stream silent past a bound; and where the
// design promises it (a RabbitMQ node killed), publishing back within
// seconds while the node is still down. A markdown table per fault kind goes to
// stdout (the numbers of docs/operations.md come from it).
//
// Environment: WARREN_CLUSTER_REPEATS (2) repeats of each single fault,
// WARREN_CLUSTER_ROLLING_REPEATS (1) of each rolling restart,
// WARREN_CLUSTER_FAULTS (all) a comma-separated subset of the fault names,
// WARREN_TEST_CLUSTER_PORT_BASE (25000) the cluster's ports,
// WARREN_TEST_CLUSTER_SCRIPT (scripts/cluster.sh of this tree) another copy
// of the script (bash reads a script as it runs: one being edited breaks).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/cluster/recorder.h"
#include "tests/cluster/workload.h"
#include "tests/integration/harness.h"
#include "tests/integration/lock_clients.h"
#include "tests/integration/messaging_clients.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/lock.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::cluster {
namespace {

using ::warren::testing::MakeTempDir;
using ::warren::testing::ReadFile;
using ::warren::testing::WaitFor;

constexpr int kReplicas = 3;
constexpr absl::Duration kSessionTimeout = absl::Seconds(4);
// A stream (Subscribe, WatchConfig, Elect while leading) that says nothing
// for longer is stuck: all of them heartbeat every second or faster.
constexpr absl::Duration kSilenceBound = absl::Seconds(30);
// Publishing through every replica resumes within 5 s of a RabbitMQ node's
// loss, every time, while the node is still down (a confirm channel that
// quorum queues keep refusing after the failover is replaced: see
// server/amqp/publish_refusals.h).
constexpr absl::Duration kPublishResumeBound = absl::Seconds(5);
constexpr absl::Duration kRecoveryTimeout = absl::Seconds(120);

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int out = 0;
  return v != nullptr && absl::SimpleAtoi(v, &out) ? out : fallback;
}

// scripts/cluster.sh with the suite's directory, ports and warrend.
class Cluster {
 public:
  Cluster()
      : dir_(MakeTempDir("warren-cluster")),
        port_base_(EnvInt("WARREN_TEST_CLUSTER_PORT_BASE", 25000)) {}

  // Runs `cluster.sh <args>`; its stdout in *out, its stderr in the log.
  absl::Status Run(const std::string& args, std::string* out = nullptr) {
    const std::string out_file = dir_ + "/last.out";
    const std::string command =
        absl::StrCat(Env(), " bash '", Script(), "' ", args, " >'", out_file,
                     "' 2>>'", dir_, "/cluster.log'");
    const int rc = std::system(command.c_str());
    if (out != nullptr) *out = ReadFile(out_file);
    if (rc != 0) {
      return absl::InternalError(
          absl::StrCat("cluster.sh ", args, " failed: ", LastLogLine()));
    }
    return absl::OkStatus();
  }
  absl::Status Restart(const std::string& node) {
    return Run("restart " + node);
  }
  std::string Out(const std::string& args) {
    std::string out;
    absl::Status s = Run(args, &out);
    EXPECT_TRUE(s.ok()) << s;
    return std::string(absl::StripAsciiWhitespace(out));
  }

  // The environment for cluster.sh, also for the janitor.
  std::string Env() const {
    return absl::StrCat("WARREN_CLUSTER_DIR='", dir_,
                        "/stack' WARREN_CLUSTER_PORT_BASE=", port_base_,
                        " WARREN_WARREND='", WARREN_WARREND_PATH, "'");
  }
  const std::string& dir() const { return dir_; }
  static std::string Script() {
    const char* script = std::getenv("WARREN_TEST_CLUSTER_SCRIPT");
    return script != nullptr && *script != '\0'
               ? std::string(script)
               : absl::StrCat(WARREN_SOURCE_DIR, "/scripts/cluster.sh");
  }
  std::string LastLogLine() const {
    std::vector<std::string> lines = absl::StrSplit(
        ReadFile(dir_ + "/cluster.log"), '\n', absl::SkipWhitespace());
    return lines.empty() ? "" : lines.back();
  }

  // Stops the cluster even if this process dies: a child in a session of
  // its own waits for the end of a pipe only this process holds.
  void StartJanitor() {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    const std::string command = absl::StrCat(
        Env(), " bash '", Script(), "' stop >>'", dir_, "/cluster.log' 2>&1");
    janitor_ = fork();
    if (janitor_ == 0) {
      setsid();
      close(fds[1]);
      char c;
      while (read(fds[0], &c, 1) > 0) {
      }
      execl("/bin/sh", "sh", "-c", command.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[0]);
    janitor_pipe_ = fds[1];
  }
  // Stops the cluster now and lets the janitor go.
  void Stop() {
    (void)Run("stop");
    if (janitor_pipe_ >= 0) close(janitor_pipe_);
    janitor_pipe_ = -1;
    if (janitor_ > 0) waitpid(janitor_, nullptr, 0);
    janitor_ = -1;
  }

 private:
  std::string dir_;
  int port_base_;
  pid_t janitor_ = -1;
  int janitor_pipe_ = -1;
};

struct Measured {
  Unavailability u;
  size_t lost = 0;
  size_t duplicates = 0;
  size_t violations = 0;
};

struct FaultSpec {
  std::string name;
  std::string description;
  int repeats;
  // Injects the fault, holds it and heals it; answers a failure to act.
  std::function<absl::Status()> run;
  bool publish_resumes_during_fault = false;
};

class ClusterFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<Cluster>();
    cluster_->StartJanitor();
    const absl::Time begin = absl::Now();
    absl::Status started = cluster_->Run("start");
    ASSERT_TRUE(started.ok()) << started;
    const std::string root = absl::StrCat("/warren-cluster-", getpid());
    std::string addresses;
    started = cluster_->Run(
        absl::StrCat(
            "start-warrend ", kReplicas, " --root=", root,
            " --zk_session_timeout=", absl::FormatDuration(kSessionTimeout),
            " --amqp_heartbeat=2s --operation_timeout=5s"),
        &addresses);
    ASSERT_TRUE(started.ok()) << started;
    for (absl::string_view a :
         absl::StrSplit(addresses, '\n', absl::SkipWhitespace())) {
      channels_.push_back(grpc::CreateChannel(
          std::string(a), grpc::InsecureChannelCredentials()));
    }
    ASSERT_EQ(channels_.size(), static_cast<size_t>(kReplicas)) << addresses;
    std::cout << "cluster started in " << FormatSeconds(absl::Now() - begin)
              << "s\n";
    WorkloadOptions options;
    options.replicas = channels_;
    options.queue = absl::StrCat("warren-cluster-", getpid());
    options.key = absl::StrCat("cluster-", getpid(), "/k");
    options.election = absl::StrCat("cluster-", getpid());
    workload_ = std::make_unique<Workload>(options, &recorder_);
    ASSERT_TRUE(workload_->Start(absl::Seconds(60)))
        << "the subscribers did not subscribe";
    Mark("workload started");
    std::string why;
    ASSERT_TRUE(AwaitRecovery(recorder_.Now(), &why)) << why;
    Mark("warm");
  }

  void TearDown() override {
    if (workload_ != nullptr) workload_->Stop();
    const std::string log = cluster_->dir() + "/observer.log";
    recorder_.Dump(log);
    std::cout << "observer log: " << log << "\ncluster log: " << cluster_->dir()
              << "/cluster.log\n";
    cluster_->Stop();
  }

  void Mark(const std::string& text) {
    recorder_.Add(Ev::kMark, "driver", "", 0, 0, text);
  }

  bool ReplicaServing(size_t r) {
    auto stub = grpc::health::v1::Health::NewStub(channels_[r]);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    return stub->Check(&context, request, &response).ok() &&
           response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }

  // Full health after `since`: every node and replica up, every replica
  // SERVING, and every client kind succeeded again after `since`.
  bool AwaitRecovery(absl::Duration since, std::string* why) {
    absl::Status healthy = cluster_->Run(
        absl::StrCat("wait-healthy ", absl::ToInt64Seconds(kRecoveryTimeout)));
    if (!healthy.ok()) {
      *why = healthy.ToString();
      return false;
    }
    int64_t version = -1;
    const bool ok = WaitFor(
        [&] {
          for (size_t r = 0; r < channels_.size(); ++r) {
            if (!ReplicaServing(r)) {
              *why = absl::StrCat("w", r + 1, " not SERVING");
              return false;
            }
          }
          for (const auto& p : workload_->publishers()) {
            if (recorder_.LastSuccess(p) <= since) {
              *why = absl::StrCat(p, ": no publish confirmed since the fault");
              return false;
            }
          }
          bool consumed = false;
          for (const auto& s : workload_->subscribers()) {
            consumed = consumed || recorder_.LastSuccess(s) > since;
          }
          if (!consumed) {
            *why = "no delivery since the fault";
            return false;
          }
          if (recorder_.LastSuccess("writer") <= since) {
            *why = "no config write since the fault";
            return false;
          }
          if (version < 0) version = recorder_.LastConfigAck().first;
          for (const auto& w : workload_->watchers()) {
            if (recorder_.WatchedVersion(w) < version) {
              *why = absl::StrCat(w, " has not seen version ", version);
              return false;
            }
          }
          bool led = false;
          for (const auto& c : workload_->candidates()) {
            led = led || recorder_.LastSuccess(c) > since;
          }
          if (!led) {
            *why = "no leader since the fault";
            return false;
          }
          return true;
        },
        kRecoveryTimeout);
    return ok;
  }

  // The candidate leading now, as the log says ("" if none).
  std::string Leader() {
    std::map<std::string, bool> leading;
    for (const Event& e : recorder_.Snapshot()) {
      if (e.kind == Ev::kElected) leading[e.actor] = true;
      if (e.kind == Ev::kLost || e.kind == Ev::kFollowing ||
          e.kind == Ev::kStreamEnd) {
        leading[e.actor] = false;
      }
    }
    for (const auto& [actor, yes] : leading) {
      if (yes) return actor;
    }
    return "";
  }
  // The replica of the leading candidate: "cand2" runs on w2.
  std::string LeaderReplica() {
    std::string leader;
    WaitFor(
        [&] {
          leader = Leader();
          return !leader.empty();
        },
        absl::Seconds(30));
    return leader.empty() ? "w1" : absl::StrCat("w", leader.substr(4));
  }
  // The RabbitMQ node that leads the quorum queue.
  std::string QueueLeaderNode() {
    std::string out;
    for (const char* node : {"rmq1", "rmq2", "rmq3"}) {
      if (!cluster_
               ->Run(absl::StrCat("ctl ", node, " -q list_queues name leader"),
                     &out)
               .ok()) {
        continue;
      }
      for (absl::string_view line : absl::StrSplit(out, '\n')) {
        std::vector<std::string> f =
            absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
        if (f.size() == 2 && f[0] == workload_->options().queue) {
          return f[1].substr(0, f[1].find('@'));
        }
      }
    }
    ADD_FAILURE() << "no leader of " << workload_->options().queue
                  << " found: " << out;
    return "rmq1";
  }
  std::vector<std::string> ZkFollowers() {
    std::vector<std::string> out;
    for (absl::string_view line :
         absl::StrSplit(cluster_->Out("status"), '\n')) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() == 5 && f[4] == "follower") out.push_back(f[0]);
    }
    return out;
  }

  // Holds a fault for `d`: a timed wait by definition.
  static void Hold(absl::Duration d) { absl::SleepFor(d); }

  std::vector<FaultSpec> Faults() {
    const int r = EnvInt("WARREN_CLUSTER_REPEATS", 2);
    const int rr = EnvInt("WARREN_CLUSTER_ROLLING_REPEATS", 1);
    Cluster& c = *cluster_;
    auto kill_restart = [&c, this](std::function<std::string()> pick,
                                   absl::Duration hold) {
      return [&c, pick, hold, this]() -> absl::Status {
        const std::string node = pick();
        Mark(absl::StrCat("kill -9 ", node));
        absl::Status s = c.Run("kill " + node);
        if (!s.ok()) return s;
        Hold(hold);
        Mark(absl::StrCat("restart ", node));
        return c.Restart(node);
      };
    };
    auto freeze_thaw = [&c, this](std::function<std::string()> pick,
                                  absl::Duration hold) {
      return [&c, pick, hold, this]() -> absl::Status {
        const std::string node = pick();
        Mark(absl::StrCat("SIGSTOP ", node));
        absl::Status s = c.Run("freeze " + node);
        if (!s.ok()) return s;
        Hold(hold);
        Mark(absl::StrCat("SIGCONT ", node));
        return c.Run("thaw " + node);
      };
    };
    auto rolling = [&c, this](std::vector<std::string> nodes) {
      return [&c, nodes, this]() -> absl::Status {
        for (const auto& node : nodes) {
          Mark(absl::StrCat("rolling restart ", node));
          absl::Status s = c.Restart(node);
          if (!s.ok()) return s;
          s = c.Run("wait-healthy 120");
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      };
    };
    std::vector<FaultSpec> faults = {
        {"zk-leader-kill", "kill -9 of the ZooKeeper leader (down 6 s)", r,
         kill_restart([&c] { return c.Out("zk-leader"); }, absl::Seconds(6))},
        {"zk-follower-kill", "kill -9 of a ZooKeeper follower (down 6 s)", r,
         kill_restart(
             [this] {
               auto f = ZkFollowers();
               return f.empty() ? std::string("zk1") : f[0];
             },
             absl::Seconds(6))},
        {"zk-quorum-loss",
         "kill -9 of 2 of 3 ZooKeeper nodes, down past the session timeout "
         "(4 s + 4 s)",
         r,
         [&c, this]() -> absl::Status {
           const std::string leader = c.Out("zk-leader");
           auto followers = ZkFollowers();
           if (followers.empty()) return absl::InternalError("no follower");
           Mark(absl::StrCat("kill -9 ", leader, " and ", followers[0]));
           absl::Status s = c.Run("kill " + leader);
           if (s.ok()) s = c.Run("kill " + followers[0]);
           if (!s.ok()) return s;
           Hold(kSessionTimeout + absl::Seconds(4));
           Mark(absl::StrCat("restart ", leader, " and ", followers[0]));
           s = c.Restart(leader);
           if (s.ok()) s = c.Restart(followers[0]);
           return s;
         }},
        {"rmq-kill",
         "kill -9 of the RabbitMQ node leading the quorum queue (down 20 s)", r,
         kill_restart([this] { return QueueLeaderNode(); }, absl::Seconds(20)),
         true},
        // No bound while it is frozen: the node's peers keep waiting for it
        // (its sockets stay open), and in the first runs no replica could
        // publish to the quorum queue through any node until the thaw.
        {"rmq-freeze",
         "SIGSTOP of the RabbitMQ node leading the quorum queue for 20 s", r,
         freeze_thaw([this] { return QueueLeaderNode(); }, absl::Seconds(20))},
        {"warrend-kill",
         "kill -9 of the replica whose candidate leads (down 5 s)", r,
         kill_restart([this] { return LeaderReplica(); }, absl::Seconds(5))},
        {"warrend-freeze-leader",
         "SIGSTOP of the leading replica past the session timeout (4 s + 3 "
         "s), then SIGCONT",
         r,
         freeze_thaw([this] { return LeaderReplica(); },
                     kSessionTimeout + absl::Seconds(3))},
        {"rolling-warrend", "rolling restart (SIGTERM, start) of w1..w3", rr,
         rolling({"w1", "w2", "w3"})},
        {"rolling-rmq", "rolling restart of rmq1..rmq3", rr,
         rolling({"rmq1", "rmq2", "rmq3"})},
        {"rolling-zk", "rolling restart of zk1..zk3", rr,
         rolling({"zk1", "zk2", "zk3"})},
    };
    const char* only = std::getenv("WARREN_CLUSTER_FAULTS");
    if (only != nullptr && *only != '\0') {
      std::set<std::string> wanted = absl::StrSplit(only, ',');
      faults.erase(std::remove_if(faults.begin(), faults.end(),
                                  [&](const FaultSpec& f) {
                                    return wanted.count(f.name) == 0;
                                  }),
                   faults.end());
    }
    return faults;
  }

  // New lines of a check over the whole log (each reported once).
  std::vector<std::string> Fresh(const std::vector<std::string>& lines) {
    std::vector<std::string> out;
    for (const auto& l : lines) {
      if (reported_.insert(l).second) out.push_back(l);
    }
    return out;
  }

  // Runs one repeat of a fault and checks the invariants on its window.
  Measured RunOnce(const FaultSpec& fault, int repeat) {
    SCOPED_TRACE(absl::StrCat(fault.name, " #", repeat));
    Measured m;
    const size_t dups_before = recorder_.Duplicates();
    const absl::Duration injected = recorder_.Now();
    Mark(absl::StrCat("fault ", fault.name, " #", repeat));
    absl::Status acted = fault.run();
    EXPECT_TRUE(acted.ok()) << acted;
    const absl::Duration healed = recorder_.Now();
    Mark(absl::StrCat("healed ", fault.name, " #", repeat));
    std::string why;
    const bool recovered = AwaitRecovery(healed, &why);
    EXPECT_TRUE(recovered) << fault.name << " #" << repeat
                           << ": not back to full health within "
                           << kRecoveryTimeout << ": " << why;
    const absl::Duration end = recorder_.Now();
    Mark(absl::StrCat("recovered ", fault.name, " #", repeat));
    const Window window{injected, end};

    // Every message confirmed so far is consumed (at least once).
    std::vector<std::string> pending = recorder_.Unconsumed();
    WaitFor([&] { return recorder_.StillUnconsumed(&pending); },
            absl::Seconds(60));
    m.lost = pending.size();
    EXPECT_EQ(m.lost, 0u) << fault.name << " #" << repeat
                          << ": confirmed but never consumed, e.g. "
                          << absl::StrJoin(
                                 pending.begin(),
                                 pending.begin() +
                                     std::min<size_t>(pending.size(), 10),
                                 ", ");
    m.duplicates = recorder_.Duplicates() - dups_before;

    const std::vector<Event> log = recorder_.Snapshot();
    m.u = MeasureUnavailability(log, window);
    auto expect_none = [&](const char* what,
                           const std::vector<std::string>& lines) {
      m.violations += lines.size();
      EXPECT_TRUE(lines.empty()) << fault.name << " #" << repeat << ": " << what
                                 << ":\n  " << absl::StrJoin(lines, "\n  ");
    };
    expect_none("overlapping leases", Fresh(LeaseOverlaps(log)));
    expect_none("fencing tokens not increasing", Fresh(FencingViolations(log)));
    expect_none("config writes lost", Fresh(ConfigViolations(log)));
    expect_none("failures no fault explains",
                Fresh(UnexpectedStatuses(log, window)));
    expect_none("silent streams",
                Fresh(SilentStreams(log, window, kSilenceBound)));
    if (fault.publish_resumes_during_fault) {
      const Unavailability during =
          MeasureUnavailability(log, Window{injected, healed});
      if (during.publish > kPublishResumeBound) {
        expect_none("publishing did not resume while the node was down",
                    {absl::StrCat(WorstPublisher(log, Window{injected, healed}),
                                  " (bound ",
                                  FormatSeconds(kPublishResumeBound), "s)")});
      }
    }
    std::cout << absl::StrFormat(
                     "[%s #%d] publish %ss, consume %ss, config %ss, leader "
                     "%ss, lost %d, duplicates %d, violations %d\n",
                     fault.name, repeat, FormatSeconds(m.u.publish),
                     FormatSeconds(m.u.subscribe), FormatSeconds(m.u.config),
                     FormatSeconds(m.u.leader), m.lost, m.duplicates,
                     m.violations)
              << std::flush;
    return m;
  }

  // The final state: the writer stopped, every watcher at the last
  // acknowledged value, a consistent read of every replica too.
  void CheckFinalConfig() {
    workload_->StopWriter();
    const auto [version, value] = recorder_.LastConfigAck();
    for (const auto& w : workload_->watchers()) {
      EXPECT_TRUE(
          WaitFor([&] { return recorder_.WatchedVersion(w) >= version; },
                  absl::Seconds(30)))
          << w << " never saw the final version " << version;
    }
    for (size_t r = 0; r < channels_.size(); ++r) {
      auto stub = v1::ConfigService::NewStub(channels_[r]);
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::GetConfigRequest request;
      request.set_key(workload_->options().key);
      request.set_consistent(true);
      v1::GetConfigResponse response;
      grpc::Status s = stub->GetConfig(&context, request, &response);
      ASSERT_TRUE(s.ok()) << "w" << r + 1 << ": " << s.error_message();
      EXPECT_EQ(response.entry().value(), value) << "w" << r + 1;
      EXPECT_EQ(response.entry().version(), version) << "w" << r + 1;
    }
    // The last value each watcher saw is the final one.
    std::map<std::string, std::pair<int64_t, std::string>> last;
    for (const Event& e : recorder_.Snapshot()) {
      if (e.kind == Ev::kWatchValue && e.a >= last[e.actor].first) {
        last[e.actor] = {e.a, e.id};
      }
    }
    for (const auto& w : workload_->watchers()) {
      EXPECT_EQ(last[w].second, value)
          << w << " ended at " << last[w].second << "@" << last[w].first;
    }
  }

  Recorder recorder_;
  std::unique_ptr<Cluster> cluster_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::unique_ptr<Workload> workload_;
  std::set<std::string> reported_;
};

absl::Duration Median(std::vector<absl::Duration> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? absl::ZeroDuration() : v[(v.size() - 1) / 2];
}

absl::Duration Worst(const std::vector<absl::Duration>& v) {
  return v.empty() ? absl::ZeroDuration()
                   : *std::max_element(v.begin(), v.end());
}

TEST_F(ClusterFaultTest, ClientsKeepWorkingThroughEveryFault) {
  const absl::Time begin = absl::Now();
  std::vector<std::pair<FaultSpec, std::vector<Measured>>> results;
  for (const FaultSpec& fault : Faults()) {
    std::vector<Measured> runs;
    for (int i = 1; i <= fault.repeats; ++i) runs.push_back(RunOnce(fault, i));
    results.emplace_back(fault, runs);
  }
  CheckFinalConfig();
  workload_->Stop();
  // Over the whole log, once more (new lines only).
  const std::vector<Event> log = recorder_.Snapshot();
  for (const auto& lines :
       {LeaseOverlaps(log), FencingViolations(log), ConfigViolations(log)}) {
    std::vector<std::string> fresh = Fresh(lines);
    EXPECT_TRUE(fresh.empty()) << absl::StrJoin(fresh, "\n");
  }

  auto cell = [](const std::vector<Measured>& runs,
                 absl::Duration Unavailability::*field) {
    std::vector<absl::Duration> v;
    for (const Measured& m : runs) v.push_back(m.u.*field);
    return absl::StrCat(FormatSeconds(Median(v)), " / ",
                        FormatSeconds(Worst(v)));
  };
  std::string table =
      "\n| fault | repeats | publish unavailable (s, median / worst) | "
      "consume | config writes | leader failover | lost | duplicates | "
      "violations |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& [fault, runs] : results) {
    size_t lost = 0, dups = 0, violations = 0;
    for (const Measured& m : runs) {
      lost += m.lost;
      dups += m.duplicates;
      violations += m.violations;
    }
    absl::StrAppend(&table, "| ", fault.description, " | ", runs.size(), " | ",
                    cell(runs, &Unavailability::publish), " | ",
                    cell(runs, &Unavailability::subscribe), " | ",
                    cell(runs, &Unavailability::config), " | ",
                    cell(runs, &Unavailability::leader), " | ", lost, " | ",
                    dups, " | ", violations, " |\n");
  }
  absl::StrAppend(&table, "\nconfirmed messages: ", recorder_.Confirmed(),
                  "; faults took ", FormatSeconds(absl::Now() - begin), "s\n");
  std::cout << table << std::flush;
}

// A lock holder's replica frozen (SIGSTOP) past the session timeout: its
// lease heartbeats stop, the next holder (on another replica) acquires only
// after the frozen holder's node is gone, and once the replica resumes
// (SIGCONT) the old holder's late fenced config write and publish, which a
// client acting on a stale belief would send, are refused and change
// nothing.
TEST_F(ClusterFaultTest, AFrozenLockHoldersLateFencedWritesAreRefused) {
  namespace v1 = ::warren::v1;
  using ::warren::testing::MakeAcquire;
  using ::warren::testing::TestLocker;
  const std::string lock = absl::StrCat("cluster-", getpid(), "/lock");
  const std::string key = absl::StrCat("cluster-", getpid(), "/fenced");
  auto locks1 = v1::LockService::NewStub(channels_[0]);
  auto locks2 = v1::LockService::NewStub(channels_[1]);
  auto config1 = v1::ConfigService::NewStub(channels_[0]);
  auto config2 = v1::ConfigService::NewStub(channels_[1]);
  auto messaging1 = v1::MessagingService::NewStub(channels_[0]);
  auto is_heartbeat = [](const v1::LockResponse& r) {
    return r.has_heartbeat();
  };

  v1::Acquire acquire = MakeAcquire(lock, "frozen");
  acquire.mutable_heartbeat_interval()->set_seconds(1);
  TestLocker holder(*locks1, acquire);
  const int acquired = holder.WaitAcquired();
  ASSERT_GE(acquired, 0);
  const uint64_t old_token =
      holder.events()[acquired].response.acquired().holder().fencing_token();
  ASSERT_GE(holder.WaitFor(is_heartbeat, acquired + 1, absl::Seconds(10)), 0);
  acquire.set_holder_id("next");
  TestLocker next(*locks2, acquire);
  ASSERT_GE(
      next.WaitFor([](const v1::LockResponse& r) { return r.has_queued(); }),
      0);
  auto put = [&](v1::ConfigService::Stub& stub, const std::string& value,
                 uint64_t token) {
    v1::PutConfigRequest request;
    request.set_key(key);
    request.set_value(value);
    request.mutable_fence()->set_lock(lock);
    request.mutable_fence()->set_fencing_token(token);
    v1::PutConfigResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return stub.PutConfig(&context, request, &response);
  };
  grpc::Status written = put(*config1, "by the first holder", old_token);
  ASSERT_TRUE(written.ok()) << written.error_message();

  Mark("SIGSTOP w1 (lock holder)");
  const absl::Time frozen = absl::Now();
  ASSERT_TRUE(cluster_->Run("freeze w1").ok());
  const int next_acquired = next.WaitAcquired(0, absl::Seconds(60));
  const absl::Time taken_over = absl::Now();
  ASSERT_GE(next_acquired, 0) << "the next holder never acquired";
  // Only once the frozen holder's session (and node) expired.
  EXPECT_GE(taken_over - frozen, kSessionTimeout - absl::Seconds(1));
  auto get_lock = v1::LockService::NewStub(channels_[2]);
  {
    v1::GetLockRequest request;
    request.set_name(lock);
    v1::GetLockResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(get_lock->GetLock(&context, request, &response).ok());
    ASSERT_EQ(response.holders_size(), 1);
    EXPECT_EQ(response.holders(0).holder_id(), "next");
    EXPECT_GT(response.holders(0).fencing_token(), old_token);
  }
  const uint64_t new_token =
      next.events()[next_acquired].response.acquired().holder().fencing_token();
  Mark("SIGCONT w1");
  ASSERT_TRUE(cluster_->Run("thaw w1").ok());

  // The frozen holder heard no heartbeat after the freeze (one already on
  // its way may land), and is told it lost.
  const int lost =
      holder.WaitFor([](const v1::LockResponse& r) { return r.has_lost(); },
                     acquired + 1, absl::Seconds(60));
  ASSERT_GE(lost, 0);
  for (const auto& e : holder.events()) {
    if (e.response.has_heartbeat()) {
      EXPECT_LT(e.time, frozen + absl::Seconds(1))
          << "a heartbeat after the freeze";
    }
  }

  // Its late writes, fenced with the old token, are refused. Right after
  // the thaw the replica answers UNAVAILABLE until its new session is up,
  // which a client retries (as it would for real).
  auto answered = [](const std::function<grpc::Status()>& call) {
    grpc::Status status;
    WaitFor(
        [&] {
          status = call();
          return status.error_code() != grpc::StatusCode::UNAVAILABLE;
        },
        absl::Seconds(60));
    return status;
  };
  grpc::Status late =
      answered([&] { return put(*config1, "late", old_token); });
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << late.error_message();
  EXPECT_THAT(late.error_message(), ::testing::StartsWith("fence: "));
  {
    v1::PublishRequest request;
    request.set_exchange("amq.topic");
    request.set_routing_key("cluster.fence.nobody");
    request.set_payload("late");
    request.mutable_fence()->set_lock(lock);
    request.mutable_fence()->set_fencing_token(old_token);
    grpc::Status published = answered([&] {
      v1::PublishResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      return messaging1->Publish(&context, request, &response);
    });
    EXPECT_EQ(published.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << published.error_message();
  }
  v1::GetConfigRequest get;
  get.set_key(key);
  get.set_consistent(true);
  v1::GetConfigResponse current;
  grpc::ClientContext context;
  ASSERT_TRUE(config2->GetConfig(&context, get, &current).ok());
  EXPECT_EQ(current.entry().value(), "by the first holder");
  // The new holder's own token writes.
  written = put(*config2, "by the next holder", new_token);
  EXPECT_TRUE(written.ok()) << written.error_message();
}

// Subscribes through `stub` until the stream says `subscribed` (a replica
// whose broker node is down answers UNAVAILABLE for a while).
std::unique_ptr<::warren::testing::TestSubscriber> SubscribeWhenServed(
    ::warren::v1::MessagingService::Stub& stub,
    const ::warren::v1::SubscribeStart& start) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (true) {
    auto sub = std::make_unique<::warren::testing::TestSubscriber>(stub, start);
    if (!sub->WaitSubscribed().empty() || absl::Now() > deadline) return sub;
    absl::SleepFor(absl::Milliseconds(500));
  }
}

std::vector<std::string> PayloadsOf(
    const std::vector<::warren::v1::Delivery>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.payload());
  return out;
}

// A stream replicated over the three RabbitMQ nodes: published through one
// replica, replayed from the first message through another, and resumed at
// a stored offset through the third while a broker node is down: no gap
// and no repeat.
TEST_F(ClusterFaultTest, AStreamReplaysAndResumesAcrossReplicasAndANodeLoss) {
  namespace v1 = ::warren::v1;
  const std::string queue = absl::StrCat("cluster-stream-", getpid());
  v1::SubscribeStart start;
  start.set_queue(queue);
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_STREAM);
  auto messaging1 = v1::MessagingService::NewStub(channels_[0]);
  auto messaging2 = v1::MessagingService::NewStub(channels_[1]);
  auto messaging3 = v1::MessagingService::NewStub(channels_[2]);
  ASSERT_FALSE(
      SubscribeWhenServed(*messaging1, start)->WaitSubscribed().empty());
  std::vector<std::string> sent;
  for (int i = 0; i < 50; ++i) {
    v1::PublishRequest request;
    request.set_routing_key(queue);
    request.set_payload(absl::StrCat("s", i));
    v1::PublishResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    ASSERT_TRUE(messaging1->Publish(&context, request, &response).ok());
    sent.push_back(request.payload());
  }
  start.mutable_offset()->set_first(true);
  auto replay = SubscribeWhenServed(*messaging2, start);
  ASSERT_TRUE(replay->WaitDeliveries(50));
  EXPECT_EQ(PayloadsOf(replay->deliveries()), sent);
  const uint64_t resume_at = replay->deliveries()[24].stream_offset() + 1;
  replay->Cancel();

  Mark("kill -9 rmq1 (stream replay)");
  ASSERT_TRUE(cluster_->Run("kill rmq1").ok());
  start.mutable_offset()->set_offset(resume_at);
  auto resumed = SubscribeWhenServed(*messaging3, start);
  ASSERT_TRUE(resumed->WaitDeliveries(25));
  EXPECT_EQ(PayloadsOf(resumed->deliveries()),
            std::vector<std::string>(sent.begin() + 25, sent.end()));
  Mark("restart rmq1");
  ASSERT_TRUE(cluster_->Restart("rmq1").ok());
}

// The quorum delivery limit holds on the cluster: a message nacked with
// requeue forever is delivered exactly `delivery_limit` times, whichever
// replica the subscriber uses, then reaches the dead-letter queue.
TEST_F(ClusterFaultTest, AQuorumDeliveryLimitHoldsOnTheCluster) {
  namespace v1 = ::warren::v1;
  const std::string queue = absl::StrCat("cluster-limited-", getpid());
  const std::string dlx = queue + "-dlx";
  auto messaging1 = v1::MessagingService::NewStub(channels_[0]);
  auto messaging2 = v1::MessagingService::NewStub(channels_[1]);
  v1::SubscribeStart dead;
  dead.mutable_topic()->set_exchange(dlx);
  dead.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_FANOUT);
  dead.set_group(queue + "-dlq");
  dead.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  auto dead_letters = SubscribeWhenServed(*messaging1, dead);
  ASSERT_FALSE(dead_letters->WaitSubscribed().empty());
  v1::SubscribeStart start;
  start.set_queue(queue);
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  start.mutable_queue_options()->set_delivery_limit(3);
  start.mutable_queue_options()->set_dead_letter_exchange(dlx);
  auto sub = SubscribeWhenServed(*messaging2, start);
  ASSERT_FALSE(sub->WaitSubscribed().empty());
  v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_payload("poison");
  v1::PublishResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  ASSERT_TRUE(messaging1->Publish(&context, request, &response).ok());
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(sub->WaitDeliveries(n)) << n;
    ASSERT_TRUE(sub->Nack({sub->deliveries()[n - 1].delivery_id()}, true));
  }
  ASSERT_TRUE(dead_letters->WaitDeliveries(1));
  EXPECT_EQ(dead_letters->deliveries()[0].payload(), "poison");
  EXPECT_EQ(sub->delivery_count(), 3u);
}

}  // namespace
}  // namespace warren::cluster
