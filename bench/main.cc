// warren-bench: runs each scenario through warrend and directly against the
// same RabbitMQ and ZooKeeper, and writes report.md and results.json.
// bench/run.sh starts everything it needs; see bench/README.md.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/scenarios.h"
#include "bench/zk_direct.h"

ABSL_FLAG(std::string, warren, "127.0.0.1:50051", "warrend's address");
ABSL_FLAG(std::string, amqp_url, "amqp://guest:guest@127.0.0.1:5672/",
          "the RabbitMQ warrend uses (the direct side talks to it too)");
ABSL_FLAG(std::string, zk, "127.0.0.1:2181",
          "the ZooKeeper warrend uses (the direct side talks to it too)");
ABSL_FLAG(int, warrend_pid, 0,
          "warrend's pid: its CPU use and the idle scenario (0: not measured)");
ABSL_FLAG(int, rabbitmq_pid, 0, "the broker's pid, for its CPU use");
ABSL_FLAG(int, zookeeper_pid, 0, "ZooKeeper's pid, for its CPU use");
ABSL_FLAG(bool, quick, false,
          "a short run (under a minute) to prove the benchmark works");
ABSL_FLAG(std::string, scenarios, "",
          "comma-separated subset of publish,consume,latency,config,fanout,"
          "failover,lock,call,idle,stream (default: all)");
ABSL_FLAG(int, runs, 0, "runs per figure (default 3; quick 2)");
ABSL_FLAG(double, warmup_s, 0, "warm-up seconds (default 1; quick 0.3)");
ABSL_FLAG(double, duration_s, 0,
          "seconds per throughput measurement (default 5; quick 1)");
ABSL_FLAG(double, latency_duration_s, 0,
          "seconds per latency measurement (default 10; quick 2)");
ABSL_FLAG(double, config_duration_s, 0,
          "seconds per GetConfig measurement (default 2; quick 0.5)");
ABSL_FLAG(int, message_size, 256, "message bytes");
ABSL_FLAG(int, window, 256,
          "W: PublishStream window and direct confirm window");
ABSL_FLAG(int, callers, 64, "N: concurrent unary Publish callers");
ABSL_FLAG(int, prefetch, 256, "P: Subscribe max_in_flight / basic.qos");
ABSL_FLAG(int, ack_batch, 1, "deliveries per ack on both sides");
ABSL_FLAG(int, consume_messages, 0,
          "messages pre-filled per consume run (default 50000; quick 5000)");
ABSL_FLAG(int, rate, 1000, "msg/s of the latency scenario");
ABSL_FLAG(int, config_concurrency, 64, "GetConfig calls in flight");
ABSL_FLAG(int, watchers, 0,
          "WatchConfig fan-out watchers (default 1000; quick 100)");
ABSL_FLAG(
    int, watch_sessions, 0,
    "ZooKeeper sessions of the direct fan-out (default: one per watcher)");
ABSL_FLAG(int, fanout_puts, 0, "puts per fan-out side (default 5; quick 3)");
ABSL_FLAG(int, failovers, 0,
          "failovers per row and side (default 10; quick 3)");
ABSL_FLAG(int, idle_streams, 0,
          "idle Subscribe streams (default 10000; quick 2500)");
ABSL_FLAG(int, idle_candidates, 0,
          "idle candidates (default 10000; quick 1000)");
ABSL_FLAG(int, candidates_per_election, 10, "idle candidates per election");
ABSL_FLAG(int, lock_clients, 0,
          "clients contending for one mutex (default 10; quick 4)");
ABSL_FLAG(int, lock_mutexes, 100, "independent mutexes, one client each");
ABSL_FLAG(std::string, out, "", "directory for report.md and results.json");
ABSL_FLAG(std::string, label, "", "the report's title");
ABSL_FLAG(std::string, machine_file, "",
          "a text file describing the machine, copied into the report");

namespace warren::bench {
namespace {

absl::Duration Seconds(double flag, double normal, double quick, bool q) {
  return absl::Seconds(flag > 0 ? flag : (q ? quick : normal));
}
int Pick(int flag, int normal, int quick, bool q) {
  return flag > 0 ? flag : (q ? quick : normal);
}

Options LoadOptions(int argc, char** argv) {
  Options o;
  o.warren = absl::GetFlag(FLAGS_warren);
  o.amqp_url = absl::GetFlag(FLAGS_amqp_url);
  o.zk = absl::GetFlag(FLAGS_zk);
  o.warrend_pid = absl::GetFlag(FLAGS_warrend_pid);
  o.rabbitmq_pid = absl::GetFlag(FLAGS_rabbitmq_pid);
  o.zookeeper_pid = absl::GetFlag(FLAGS_zookeeper_pid);
  const bool q = o.quick = absl::GetFlag(FLAGS_quick);
  for (absl::string_view s :
       absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',', absl::SkipEmpty())) {
    o.scenarios.insert(std::string(s));
  }
  o.runs = Pick(absl::GetFlag(FLAGS_runs), 3, 2, q);
  o.warmup = Seconds(absl::GetFlag(FLAGS_warmup_s), 1, 0.3, q);
  o.duration = Seconds(absl::GetFlag(FLAGS_duration_s), 5, 1, q);
  o.latency_duration =
      Seconds(absl::GetFlag(FLAGS_latency_duration_s), 10, 2, q);
  o.config_duration =
      Seconds(absl::GetFlag(FLAGS_config_duration_s), 2, 0.5, q);
  o.message_size = static_cast<size_t>(absl::GetFlag(FLAGS_message_size));
  o.window = absl::GetFlag(FLAGS_window);
  o.callers = absl::GetFlag(FLAGS_callers);
  o.prefetch = absl::GetFlag(FLAGS_prefetch);
  o.ack_batch = absl::GetFlag(FLAGS_ack_batch);
  o.consume_messages =
      Pick(absl::GetFlag(FLAGS_consume_messages), 50000, 5000, q);
  o.rate = absl::GetFlag(FLAGS_rate);
  o.config_concurrency = absl::GetFlag(FLAGS_config_concurrency);
  o.watchers = Pick(absl::GetFlag(FLAGS_watchers), 1000, 100, q);
  o.watch_sessions = absl::GetFlag(FLAGS_watch_sessions);
  o.fanout_puts = Pick(absl::GetFlag(FLAGS_fanout_puts), 5, 3, q);
  o.failovers = Pick(absl::GetFlag(FLAGS_failovers), 10, 3, q);
  o.idle_streams = Pick(absl::GetFlag(FLAGS_idle_streams), 10000, 2500, q);
  o.idle_candidates =
      Pick(absl::GetFlag(FLAGS_idle_candidates), 10000, 1000, q);
  o.candidates_per_election = absl::GetFlag(FLAGS_candidates_per_election);
  o.lock_clients = Pick(absl::GetFlag(FLAGS_lock_clients), 10, 4, q);
  o.lock_mutexes = absl::GetFlag(FLAGS_lock_mutexes);
  o.prefix = absl::StrCat("wb", getpid(), "x",
                          absl::ToUnixSeconds(absl::Now()) % 100000);
  o.direct_root = absl::StrCat("/warren-bench-direct/", o.prefix);
  o.out_dir = absl::GetFlag(FLAGS_out);
  o.label = absl::GetFlag(FLAGS_label);
  if (o.label.empty()) o.label = q ? "quick run" : "full run";
  if (const std::string f = absl::GetFlag(FLAGS_machine_file); !f.empty()) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    o.machine = ss.str();
    while (!o.machine.empty() && o.machine.back() == '\n') o.machine.pop_back();
  }
  std::vector<std::string> args(argv, argv + argc);
  o.command_line = absl::StrJoin(args, " ");
  return o;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out)
    std::fprintf(stderr, "warren-bench: cannot write %s\n", path.c_str());
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Benchmarks warrend against direct rabbitmq-c / ZooKeeper C client use.\n"
      "  warren-bench --warren=HOST:PORT --amqp_url=URL --zk=HOST:PORT "
      "[--quick] [--out=DIR]");
  absl::ParseCommandLine(argc, argv);
  const Options o = LoadOptions(argc, argv);
  // Thousands of streams, sessions and connections: lift the fd limit.
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  Report report(o);
  Env env{o,       report, MakeChannel(o.warren, 0), nullptr, nullptr,
          nullptr, nullptr};
  if (!WaitReady(env.channel, absl::Seconds(15))) {
    std::fprintf(stderr, "warren-bench: warrend at %s is not reachable\n",
                 o.warren.c_str());
    return 1;
  }
  env.messaging = v1::MessagingService::NewStub(env.channel);
  env.config = v1::ConfigService::NewStub(env.channel);
  env.election = v1::ElectionService::NewStub(env.channel);
  auto admin = AmqpConnection::Open(o.amqp_url, "bench-admin");
  if (!admin.ok() || !(*admin)->OpenChannel(1).ok()) {
    std::fprintf(stderr, "warren-bench: RabbitMQ at %s is not reachable\n",
                 o.amqp_url.c_str());
    return 1;
  }
  env.admin = *std::move(admin);

  struct Scenario {
    const char* name;
    absl::Status (*run)(Env&);
  };
  const Scenario scenarios[] = {
      {"publish", RunPublish}, {"consume", RunConsume},
      {"latency", RunLatency}, {"config", RunConfig},
      {"fanout", RunFanout},   {"failover", RunFailover},
      {"lock", RunLock},       {"call", RunCall},
      {"idle", RunIdle},       {"stream", RunStream},
      {"delay", RunDelay},
  };
  const int64_t started = NowNs();
  for (const Scenario& s : scenarios) {
    if (!o.Enabled(s.name)) continue;
    const int64_t t0 = NowNs();
    std::fprintf(stderr, "warren-bench: %s ...\n", s.name);
    absl::Status status = s.run(env);
    if (!status.ok()) {
      report.Finding(
          absl::StrCat(s.name, ": the scenario stopped: ", status.message()));
    }
    std::fprintf(
        stderr, "warren-bench: %s done in %.1f s%s\n", s.name,
        (NowNs() - t0) / 1e9,
        status.ok() ? "" : absl::StrCat(" (", status.message(), ")").c_str());
  }
  // The direct side's ZooKeeper nodes.
  if (auto zk = ZkSession::Connect(o.zk, absl::Seconds(10)); zk.ok()) {
    (*zk)->DeleteTree(o.direct_root);
  }
  report.Finding(absl::StrCat("the whole run took ",
                              static_cast<int>((NowNs() - started) / 1e9),
                              " s"));

  std::cout << report.Text() << std::flush;
  if (!o.out_dir.empty()) {
    WriteFile(o.out_dir + "/report.md", report.Markdown());
    WriteFile(o.out_dir + "/results.json", report.Json());
    std::fprintf(stderr, "warren-bench: wrote %s/report.md and results.json\n",
                 o.out_dir.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace warren::bench

int main(int argc, char** argv) { return warren::bench::Main(argc, argv); }
