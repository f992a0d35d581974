#include "bench/bench_common.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace warren::bench {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void Sleep(absl::Duration d) { absl::SleepFor(d); }

double Quantile(std::vector<double>& values, double q) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(q * values.size()));
  if (rank == 0) rank = 1;
  return values[std::min(rank, values.size()) - 1];
}

double Median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double ProcessCpuSeconds(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return 0;
  // The command name may hold spaces: fields start after the last ')'.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return 0;
  std::vector<std::string> fields =
      absl::StrSplit(line.substr(paren + 2), ' ', absl::SkipEmpty());
  // Fields 14 and 15 of the file (utime, stime) are 11 and 12 here.
  if (fields.size() < 13) return 0;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

namespace {
double SelfCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}
}  // namespace

void CpuMeter::Start() {
  wall_start_ = NowNs();
  self_ = SelfCpuSeconds();
  warrend_ = ProcessCpuSeconds(options_.warrend_pid);
  rabbitmq_ = ProcessCpuSeconds(options_.rabbitmq_pid);
  zookeeper_ = ProcessCpuSeconds(options_.zookeeper_pid);
}

CpuUsage CpuMeter::Stop() {
  const double wall = std::max(1e-9, (NowNs() - wall_start_) / 1e9);
  CpuUsage u;
  u.bench = (SelfCpuSeconds() - self_) / wall;
  u.warrend = (ProcessCpuSeconds(options_.warrend_pid) - warrend_) / wall;
  u.rabbitmq = (ProcessCpuSeconds(options_.rabbitmq_pid) - rabbitmq_) / wall;
  u.zookeeper = (ProcessCpuSeconds(options_.zookeeper_pid) - zookeeper_) / wall;
  return u;
}

ProcStatus ReadProcStatus(pid_t pid) {
  ProcStatus s;
  std::ifstream in(pid > 0 ? absl::StrCat("/proc/", pid, "/status")
                           : std::string("/proc/self/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      s.rss_mib = std::stod(line.substr(6)) / 1024.0;  // kB
    } else if (line.rfind("Threads:", 0) == 0) {
      s.threads = std::stoi(line.substr(8));
    }
  }
  return s;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           int index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("warren.bench.channel", index);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

bool WaitReady(const std::shared_ptr<grpc::Channel>& channel,
               absl::Duration timeout) {
  return channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout));
}

std::string MakePayload(size_t size) {
  std::string p(std::max<size_t>(size, 8), 'x');
  for (size_t i = 8; i < p.size(); ++i) p[i] = static_cast<char>('a' + i % 26);
  return p;
}

void StampPayload(std::string& payload, int64_t ns) {
  std::memcpy(payload.data(), &ns, sizeof(ns));
}

int64_t PayloadStamp(const void* data, size_t len) {
  int64_t ns = 0;
  if (len >= sizeof(ns)) std::memcpy(&ns, data, sizeof(ns));
  return ns;
}

int64_t PayloadStamp(const std::string& payload) {
  return PayloadStamp(payload.data(), payload.size());
}

// ---------------------------------------------------------------------------
// The report.

Row& Report::Add(std::string scenario, std::string figure, std::string unit,
                 Better better, Target target) {
  auto row = std::make_unique<Row>();
  row->scenario = std::move(scenario);
  row->figure = std::move(figure);
  row->unit = std::move(unit);
  row->better = better;
  row->target = std::move(target);
  rows_.push_back(std::move(row));
  return *rows_.back();
}

namespace {

struct Summary {
  bool valid = false;
  double median = NAN, min = NAN, max = NAN;
};

Summary Summarize(const std::vector<double>& values) {
  Summary s;
  std::vector<double> v;
  for (double x : values) {
    if (std::isfinite(x)) v.push_back(x);
  }
  if (v.empty()) return s;
  s.valid = true;
  s.median = Median(v);
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  return s;
}

std::string Num(double v) {
  if (!std::isfinite(v)) return "n/a";
  const double a = std::fabs(v);
  if (a >= 1000) return absl::StrFormat("%.0f", v);
  if (a >= 100) return absl::StrFormat("%.1f", v);
  if (a >= 10) return absl::StrFormat("%.2f", v);
  return absl::StrFormat("%.3f", v);
}

std::string Cell(const Summary& s) {
  if (!s.valid) return "n/a";
  if (s.min == s.max) return Num(s.median);
  return absl::StrCat(Num(s.median), " (", Num(s.min), "–", Num(s.max), ")");
}

double Ratio(const Row& row) {
  const Summary w = Summarize(row.warren), d = Summarize(row.direct);
  if (!w.valid || !d.valid || d.median == 0) return NAN;
  return w.median / d.median;
}

// "yes", "no" or "" (no target, or nothing to judge).
std::string Met(const Row& row) {
  const Summary w = Summarize(row.warren), d = Summarize(row.direct);
  switch (row.target.kind) {
    case Target::Kind::kNone:
      return "";
    case Target::Kind::kRatioAtLeast: {
      const double r = Ratio(row);
      if (!std::isfinite(r)) return "n/a";
      return r >= row.target.value ? "yes" : "no";
    }
    case Target::Kind::kAddedAtMost:
      if (!w.valid || !d.valid) return "n/a";
      return w.median - d.median <= row.target.value ? "yes" : "no";
    case Target::Kind::kAtMost:
      if (!w.valid) return "n/a";
      return w.median <= row.target.value ? "yes" : "no";
  }
  return "";
}

CpuUsage MedianCpu(const std::vector<CpuUsage>& v) {
  CpuUsage u;
  std::vector<double> b, w, r, z;
  for (const auto& c : v) {
    b.push_back(c.bench);
    w.push_back(c.warrend);
    r.push_back(c.rabbitmq);
    z.push_back(c.zookeeper);
  }
  u.bench = Median(b);
  u.warrend = Median(w);
  u.rabbitmq = Median(r);
  u.zookeeper = Median(z);
  return u;
}

std::string CpuCell(const std::vector<CpuUsage>& v, bool with_warrend) {
  if (v.empty()) return "–";
  const CpuUsage u = MedianCpu(v);
  std::string s = absl::StrFormat("gen %.2f", u.bench);
  if (with_warrend) absl::StrAppendFormat(&s, " · warrend %.2f", u.warrend);
  absl::StrAppendFormat(&s, " · rmq %.2f · zk %.2f", u.rabbitmq, u.zookeeper);
  return s;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

std::string JsonValues(const std::vector<double>& v) {
  std::vector<std::string> parts;
  for (double x : v) parts.push_back(JsonNumber(x));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

std::string JsonSide(const std::vector<double>& values,
                     const std::vector<CpuUsage>& cpu) {
  const Summary s = Summarize(values);
  const CpuUsage u = MedianCpu(cpu);
  return absl::StrCat(
      "{\"runs\": ", JsonValues(values), ", \"median\": ", JsonNumber(s.median),
      ", \"min\": ", JsonNumber(s.min), ", \"max\": ", JsonNumber(s.max),
      ", \"cpu_cores\": {\"load_generator\": ",
      JsonNumber(cpu.empty() ? NAN : u.bench),
      ", \"warrend\": ", JsonNumber(cpu.empty() ? NAN : u.warrend),
      ", \"rabbitmq\": ", JsonNumber(cpu.empty() ? NAN : u.rabbitmq),
      ", \"zookeeper\": ", JsonNumber(cpu.empty() ? NAN : u.zookeeper), "}}");
}

}  // namespace

std::string Report::Markdown() const {
  std::string md;
  absl::StrAppend(&md, "# Warren benchmark: ", options_.label, "\n\n");
  absl::StrAppend(&md, "Command: `", options_.command_line, "`\n\n");
  if (!options_.machine.empty()) {
    absl::StrAppend(&md, "## Machine\n\n```\n", options_.machine, "\n```\n\n");
  }
  absl::StrAppend(
      &md, "Each figure is the median of ", options_.runs,
      " runs (min–max in brackets), warm-up excluded. *ratio* is Warren / "
      "direct. The load generator, warrend, RabbitMQ and ZooKeeper all run "
      "on this one machine and compete for its cores: the CPU columns show "
      "how much each used (cores = CPU seconds per second; *gen* is the load "
      "generator itself), so read every throughput figure as \"on a machine "
      "also running the other three\".\n\n");
  absl::StrAppend(&md, "![Warren vs direct](plot.svg)\n\n");
  absl::StrAppend(&md,
                  "| scenario | figure | unit | Warren | direct | ratio | "
                  "target | met |\n|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows_) {
    const double ratio = Ratio(*r);
    absl::StrAppend(&md, "| ", r->scenario, " | ", r->figure, " | ", r->unit,
                    " | ", Cell(Summarize(r->warren)), " | ",
                    Cell(Summarize(r->direct)), " | ",
                    std::isfinite(ratio) ? absl::StrFormat("%.2fx", ratio)
                                         : std::string("n/a"),
                    " | ", r->target.text, " | ", Met(*r), " |\n");
  }
  absl::StrAppend(&md,
                  "\n## CPU used during each measurement (median, cores)\n\n"
                  "| scenario | figure | Warren side | direct side |\n"
                  "|---|---|---|---|\n");
  for (const auto& r : rows_) {
    if (r->warren_cpu.empty() && r->direct_cpu.empty()) continue;
    absl::StrAppend(&md, "| ", r->scenario, " | ", r->figure, " | ",
                    CpuCell(r->warren_cpu, true), " | ",
                    CpuCell(r->direct_cpu, false), " |\n");
  }
  bool any_notes = !findings_.empty();
  for (const auto& r : rows_) any_notes = any_notes || !r->notes.empty();
  if (any_notes) {
    absl::StrAppend(&md, "\n## Notes and findings\n\n");
    for (const auto& f : findings_) absl::StrAppend(&md, "- ", f, "\n");
    for (const auto& r : rows_) {
      for (const auto& n : r->notes) {
        absl::StrAppend(&md, "- **", r->scenario, " / ", r->figure, "**: ", n,
                        "\n");
      }
    }
  }
  return md;
}

std::string Report::Json() const {
  std::string j = "{\n";
  absl::StrAppend(&j, "  \"label\": ", JsonString(options_.label), ",\n");
  absl::StrAppend(&j, "  \"command\": ", JsonString(options_.command_line),
                  ",\n");
  absl::StrAppend(&j, "  \"machine\": ", JsonString(options_.machine), ",\n");
  absl::StrAppend(&j, "  \"runs\": ", options_.runs, ",\n");
  absl::StrAppend(&j, "  \"quick\": ", options_.quick ? "true" : "false",
                  ",\n");
  absl::StrAppend(&j, "  \"findings\": [");
  for (size_t i = 0; i < findings_.size(); ++i) {
    absl::StrAppend(&j, i ? ", " : "", JsonString(findings_[i]));
  }
  absl::StrAppend(&j, "],\n  \"rows\": [\n");
  for (size_t i = 0; i < rows_.size(); ++i) {
    const Row& r = *rows_[i];
    std::string notes;
    for (size_t k = 0; k < r.notes.size(); ++k) {
      absl::StrAppend(&notes, k ? ", " : "", JsonString(r.notes[k]));
    }
    const std::string met = Met(r);
    absl::StrAppend(
        &j, "    {\"scenario\": ", JsonString(r.scenario),
        ", \"figure\": ", JsonString(r.figure),
        ", \"unit\": ", JsonString(r.unit), ", \"higher_is_better\": ",
        r.better == Better::kHigher ? "true" : "false",
        ", \"plot\": ", r.plot ? "true" : "false",
        ",\n     \"warren\": ", JsonSide(r.warren, r.warren_cpu),
        ",\n     \"direct\": ", JsonSide(r.direct, r.direct_cpu),
        ",\n     \"ratio\": ", JsonNumber(Ratio(r)),
        ", \"target\": ", JsonString(r.target.text),
        ", \"met\": ", met == "yes" ? "true" : (met == "no" ? "false" : "null"),
        ", \"notes\": [", notes, "]}", i + 1 < rows_.size() ? "," : "", "\n");
  }
  absl::StrAppend(&j, "  ]\n}\n");
  return j;
}

std::string Report::Text() const {
  std::string t;
  absl::StrAppendFormat(&t, "%-12s %-46s %-8s %-26s %-26s %-7s %s\n",
                        "scenario", "figure", "unit", "warren", "direct",
                        "ratio", "target");
  for (const auto& r : rows_) {
    const double ratio = Ratio(*r);
    const std::string met = Met(*r);
    absl::StrAppendFormat(
        &t, "%-12s %-46s %-8s %-26s %-26s %-7s %s%s\n", r->scenario, r->figure,
        r->unit, Cell(Summarize(r->warren)), Cell(Summarize(r->direct)),
        std::isfinite(ratio) ? absl::StrFormat("%.2fx", ratio) : "n/a",
        r->target.text, met.empty() ? "" : absl::StrCat(" [", met, "]"));
  }
  for (const auto& f : findings_) absl::StrAppend(&t, "finding: ", f, "\n");
  return t;
}

}  // namespace warren::bench
