// Shared pieces of warren-bench: options, clocks, statistics, CPU and memory
// probes, and the result model every scenario fills in.
//
// Threading: Options and the Report are touched by the main thread only; the
// scenario code measures on its own threads and hands plain numbers back.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace warren::bench {

struct Options {
  // Where the two sides are.
  std::string warren;    // host:port of warrend
  std::string amqp_url;  // the same broker warrend uses
  std::string zk;        // the same ensemble warrend uses
  pid_t warrend_pid = 0;
  pid_t rabbitmq_pid = 0;
  pid_t zookeeper_pid = 0;

  bool quick = false;
  std::set<std::string> scenarios;  // empty: all
  int runs = 3;
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration duration = absl::Seconds(5);
  absl::Duration latency_duration = absl::Seconds(10);
  absl::Duration config_duration = absl::Seconds(3);

  size_t message_size = 256;
  int window = 256;    // W
  int callers = 64;    // N
  int prefetch = 256;  // P
  int ack_batch = 1;   // deliveries per ack, both sides
  int consume_messages = 50000;
  int rate = 1000;  // msg/s for the latency scenario
  int config_concurrency = 64;
  size_t config_value_size = 256;
  int watchers = 1000;
  int watch_sessions = 0;  // direct ZooKeeper sessions for fan-out; 0: watchers
  int fanout_puts = 5;
  int failovers = 10;
  int idle_streams = 10000;
  int idle_candidates = 10000;
  int candidates_per_election = 10;
  int lock_clients = 10;   // contending for one mutex
  int lock_mutexes = 100;  // independent mutexes, one client each
  int streams_per_channel = 500;

  std::string prefix;       // unique per invocation: queues, keys, elections
  std::string direct_root;  // ZooKeeper path of the direct side's nodes
  std::string out_dir;
  std::string label;
  std::string machine;  // free text, from --machine_file
  std::string command_line;

  bool Enabled(const std::string& scenario) const {
    return scenarios.empty() || scenarios.count(scenario) > 0;
  }
};

// Monotonic nanoseconds: the clock of every latency in the benchmark.
int64_t NowNs();
inline double NsToMs(int64_t ns) { return static_cast<double>(ns) / 1e6; }
void Sleep(absl::Duration d);

// The q-quantile (0..1) of `values` (sorted in place), nearest rank.
double Quantile(std::vector<double>& values, double q);
double Median(std::vector<double> values);

// CPU used (in cores: CPU seconds per wall second) by this process and by
// the servers, between Start and Stop.
struct CpuUsage {
  double bench = 0;
  double warrend = 0;
  double rabbitmq = 0;
  double zookeeper = 0;
};
class CpuMeter {
 public:
  explicit CpuMeter(const Options& options) : options_(options) {}
  void Start();
  CpuUsage Stop();

 private:
  const Options& options_;
  int64_t wall_start_ = 0;
  double self_ = 0, warrend_ = 0, rabbitmq_ = 0, zookeeper_ = 0;
};
// CPU seconds (user + system) of a process so far; 0 when unknown.
double ProcessCpuSeconds(pid_t pid);

// From /proc/<pid>/status (pid 0: this process).
struct ProcStatus {
  double rss_mib = 0;
  int threads = 0;
};
ProcStatus ReadProcStatus(pid_t pid);

// Which way a figure is better, and what the target says about it.
enum class Better { kHigher, kLower };
struct Target {
  enum class Kind { kNone, kRatioAtLeast, kAddedAtMost, kAtMost };
  Kind kind = Kind::kNone;
  double value = 0;
  std::string text;  // as written in the issue
  static Target None() { return {}; }
  static Target RatioAtLeast(double v, std::string text) {
    return {Kind::kRatioAtLeast, v, std::move(text)};
  }
  static Target AddedAtMost(double v, std::string text) {
    return {Kind::kAddedAtMost, v, std::move(text)};
  }
  static Target AtMost(double v, std::string text) {
    return {Kind::kAtMost, v, std::move(text)};
  }
};

// One line of the report: the same figure measured through Warren and
// directly, one value per run on each side.
struct Row {
  std::string scenario;
  std::string figure;
  std::string unit;
  Better better = Better::kHigher;
  Target target;
  std::vector<double> warren;
  std::vector<double> direct;
  std::vector<CpuUsage> warren_cpu;
  std::vector<CpuUsage> direct_cpu;
  std::vector<std::string> notes;
  bool plot = true;
};

class Report {
 public:
  explicit Report(const Options& options) : options_(options) {}
  Row& Add(std::string scenario, std::string figure, std::string unit,
           Better better, Target target = Target::None());
  // Free-text findings (e.g. what failed and why), printed under the table.
  void Finding(std::string text) { findings_.push_back(std::move(text)); }
  const std::vector<std::unique_ptr<Row>>& rows() const { return rows_; }

  std::string Markdown() const;
  std::string Json() const;
  // A plain table for the terminal.
  std::string Text() const;

 private:
  const Options& options_;
  std::vector<std::unique_ptr<Row>> rows_;
  std::vector<std::string> findings_;
};

// A channel with a connection of its own (`index` keeps gRPC from sharing
// one subchannel between channels to the same address).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           int index);
bool WaitReady(const std::shared_ptr<grpc::Channel>& channel,
               absl::Duration timeout);

// A payload of `size` bytes (at least 8: the first 8 carry a timestamp when
// the scenario needs one).
std::string MakePayload(size_t size);
void StampPayload(std::string& payload, int64_t ns);
int64_t PayloadStamp(const std::string& payload);
int64_t PayloadStamp(const void* data, size_t len);

}  // namespace warren::bench
