#include "tests/cluster/recorder.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/support/status.h"

namespace warren::cluster {

const char* EvName(Ev kind) {
  switch (kind) {
    case Ev::kPublishOk:
      return "publish-ok";
    case Ev::kPublishFail:
      return "publish-fail";
    case Ev::kDelivery:
      return "delivery";
    case Ev::kStreamOpen:
      return "stream-open";
    case Ev::kStreamEnd:
      return "stream-end";
    case Ev::kHeartbeat:
      return "heartbeat";
    case Ev::kConfigAck:
      return "config-ack";
    case Ev::kConfigFail:
      return "config-fail";
    case Ev::kWatchValue:
      return "watch-value";
    case Ev::kElected:
      return "elected";
    case Ev::kLost:
      return "lost";
    case Ev::kFollowing:
      return "following";
    case Ev::kMark:
      return "MARK";
  }
  return "?";
}

std::string FormatSeconds(absl::Duration d) {
  return absl::StrFormat("%.2f", absl::ToDoubleSeconds(d));
}

Recorder::Recorder() : start_(std::chrono::steady_clock::now()) {}

absl::Duration Recorder::Now() const {
  return absl::FromChrono(std::chrono::steady_clock::now() - start_);
}

void Recorder::Add(Ev kind, const std::string& actor, const std::string& id,
                   int64_t a, int64_t b, const std::string& text) {
  warren::MutexLock lock(&mu_);
  // Stamped under the lock, so that the log's order is the time order.
  Event e{Now(), kind, actor, id, a, b, text};
  switch (kind) {
    case Ev::kPublishOk:
      confirmed_.insert(id);
      last_success_[actor] = e.t;
      break;
    case Ev::kDelivery:
      if (++consumed_[id] > 1) ++duplicates_;
      last_success_[actor] = e.t;
      break;
    case Ev::kConfigAck:
      if (a > last_ack_.first) last_ack_ = {a, id};
      last_success_[actor] = e.t;
      break;
    case Ev::kWatchValue:
      if (watched_.count(actor) == 0 || a > watched_[actor])
        watched_[actor] = a;
      last_success_[actor] = e.t;
      break;
    case Ev::kElected:
    case Ev::kHeartbeat:
      last_success_[actor] = e.t;
      break;
    default:
      break;
  }
  events_.push_back(std::move(e));
}

std::vector<Event> Recorder::Snapshot() {
  warren::MutexLock lock(&mu_);
  return events_;
}

std::vector<std::string> Recorder::Unconsumed() {
  warren::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& id : confirmed_) {
    if (consumed_.find(id) == consumed_.end()) out.push_back(id);
  }
  return out;
}

bool Recorder::StillUnconsumed(std::vector<std::string>* ids) {
  warren::MutexLock lock(&mu_);
  ids->erase(std::remove_if(ids->begin(), ids->end(),
                            [&](const std::string& id)
                                ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                                  return consumed_.count(id) > 0;
                                }),
             ids->end());
  return ids->empty();
}

size_t Recorder::Duplicates() {
  warren::MutexLock lock(&mu_);
  return duplicates_;
}

size_t Recorder::Confirmed() {
  warren::MutexLock lock(&mu_);
  return confirmed_.size();
}

absl::Duration Recorder::LastSuccess(const std::string& actor) {
  warren::MutexLock lock(&mu_);
  auto it = last_success_.find(actor);
  return it == last_success_.end() ? -absl::InfiniteDuration() : it->second;
}

std::pair<int64_t, std::string> Recorder::LastConfigAck() {
  warren::MutexLock lock(&mu_);
  return last_ack_;
}

int64_t Recorder::WatchedVersion(const std::string& actor) {
  warren::MutexLock lock(&mu_);
  auto it = watched_.find(actor);
  return it == watched_.end() ? -1 : it->second;
}

void Recorder::Dump(const std::string& path) {
  std::ofstream out(path);
  for (const Event& e : Snapshot()) {
    out << absl::StrFormat("%10.3f %-12s %-8s %s %d %d %s\n",
                           absl::ToDoubleSeconds(e.t), EvName(e.kind), e.actor,
                           e.id, e.a, e.b, e.text);
  }
}

absl::Duration MaxGap(const std::vector<absl::Duration>& times, Window w) {
  absl::Duration last = w.from;
  absl::Duration worst = absl::ZeroDuration();
  for (absl::Duration t : times) {
    if (t <= w.from) continue;
    if (t >= w.to) break;
    worst = std::max(worst, t - last);
    last = t;
  }
  return std::max(worst, w.to - last);
}

namespace {

bool StartsWith(const std::string& s, const char* prefix) {
  return absl::StartsWith(s, prefix);
}

// The stretches of [from, to] that no lease covers: the longest.
absl::Duration LongestUncovered(std::vector<Lease> leases, Window w) {
  std::sort(leases.begin(), leases.end(),
            [](const Lease& x, const Lease& y) { return x.from < y.from; });
  absl::Duration covered_to = w.from;
  absl::Duration worst = absl::ZeroDuration();
  for (const Lease& l : leases) {
    if (l.to <= covered_to) continue;
    if (l.from >= w.to) break;
    if (l.from > covered_to) worst = std::max(worst, l.from - covered_to);
    covered_to = std::max(covered_to, l.to);
  }
  if (covered_to < w.to) worst = std::max(worst, w.to - covered_to);
  return worst;
}

}  // namespace

Unavailability MeasureUnavailability(const std::vector<Event>& log, Window w) {
  std::map<std::string, std::vector<absl::Duration>> publishers;
  std::vector<absl::Duration> deliveries;
  std::vector<absl::Duration> acks;
  for (const Event& e : log) {
    if (e.kind == Ev::kPublishOk) publishers[e.actor].push_back(e.t);
    if (e.kind == Ev::kDelivery) deliveries.push_back(e.t);
    if (e.kind == Ev::kConfigAck) acks.push_back(e.t);
  }
  Unavailability u;
  u.publish = absl::ZeroDuration();
  for (const auto& [actor, times] : publishers) {
    u.publish = std::max(u.publish, MaxGap(times, w));
  }
  u.subscribe = MaxGap(deliveries, w);
  u.config = MaxGap(acks, w);
  u.leader = LongestUncovered(Leases(log), w);
  return u;
}

std::vector<Lease> Leases(const std::vector<Event>& log) {
  std::vector<Lease> out;
  // Per actor: the leases still open (not yet cut by an end event).
  std::map<std::string, std::vector<size_t>> open;
  std::map<std::string, absl::Duration> interval;
  std::map<std::string, int64_t> token;
  for (const Event& e : log) {
    if (!StartsWith(e.actor, "cand")) continue;
    switch (e.kind) {
      case Ev::kElected:
        interval[e.actor] = absl::Milliseconds(e.b);
        token[e.actor] = e.a;
        [[fallthrough]];
      case Ev::kHeartbeat: {
        auto it = interval.find(e.actor);
        if (it == interval.end()) break;  // a heartbeat before any term
        out.push_back({e.actor, e.t, e.t + 2 * it->second, token[e.actor]});
        open[e.actor].push_back(out.size() - 1);
        break;
      }
      case Ev::kLost:
      case Ev::kFollowing:
      case Ev::kStreamEnd:
        for (size_t i : open[e.actor]) out[i].to = std::min(out[i].to, e.t);
        open[e.actor].clear();
        break;
      default:
        break;
    }
  }
  return out;
}

std::vector<std::string> LeaseOverlaps(const std::vector<Event>& log) {
  std::vector<Lease> leases = Leases(log);
  std::sort(leases.begin(), leases.end(),
            [](const Lease& x, const Lease& y) { return x.from < y.from; });
  std::vector<std::string> out;
  // Sweep: for each lease, the earlier leases of other actors still running.
  for (size_t i = 0; i < leases.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const Lease& a = leases[j];
      const Lease& b = leases[i];
      if (a.actor == b.actor || a.to <= b.from || b.to <= b.from ||
          a.to <= a.from) {
        continue;
      }
      out.push_back(absl::StrCat(
          b.actor, " (token ", b.token, ") was given a lease at ",
          FormatSeconds(b.from), "s while ", a.actor, " (token ", a.token,
          ") held one from ", FormatSeconds(a.from), "s to ",
          FormatSeconds(a.to), "s: overlap ",
          absl::StrFormat("%.1f", absl::ToDoubleMilliseconds(
                                      std::min(a.to, b.to) - b.from)),
          " ms"));
      if (out.size() >= 20) return out;
    }
  }
  return out;
}

std::vector<std::string> FencingViolations(const std::vector<Event>& log) {
  std::vector<std::string> out;
  int64_t max_token = 0;
  std::string holder;
  for (const Event& e : log) {
    if (e.kind != Ev::kElected) continue;
    if (e.a < max_token || (e.a == max_token && e.actor != holder)) {
      out.push_back(absl::StrCat(e.actor, " elected at ", FormatSeconds(e.t),
                                 "s with token ", e.a, " after ", holder,
                                 " held token ", max_token));
    }
    if (e.a > max_token) {
      max_token = e.a;
      holder = e.actor;
    }
  }
  return out;
}

std::vector<std::string> ConfigViolations(const std::vector<Event>& log) {
  std::vector<std::string> out;
  std::map<int64_t, std::string> acked;
  int64_t last = -1;  // ZooKeeper's first version is 0
  for (const Event& e : log) {
    if (e.kind != Ev::kConfigAck) continue;
    if (e.a <= last) {
      out.push_back(absl::StrCat("write ", e.id, " acknowledged at version ",
                                 e.a, " after version ", last,
                                 " was acknowledged (a write was lost)"));
    }
    last = std::max(last, e.a);
    acked[e.a] = e.id;
  }
  for (const Event& e : log) {
    if (e.kind != Ev::kWatchValue) continue;
    auto it = acked.find(e.a);
    if (it != acked.end() && it->second != e.id) {
      out.push_back(absl::StrCat(e.actor, " saw ", e.id, "@", e.a, " at ",
                                 FormatSeconds(e.t), "s; acknowledged was ",
                                 it->second, "@", e.a));
    }
  }
  return out;
}

std::vector<std::string> SilentStreams(const std::vector<Event>& log, Window w,
                                       absl::Duration bound) {
  std::vector<std::string> out;
  struct State {
    bool open = false;
    bool leading = false;
    absl::Duration last;
  };
  std::map<std::string, State> state;
  auto check = [&](const std::string& actor, State& s, absl::Duration now) {
    const bool watched = !StartsWith(actor, "cand") || s.leading;
    if (!s.open || !watched) return;
    const absl::Duration from = std::max(s.last, w.from);
    if (now > w.from && now - from > bound) {
      out.push_back(absl::StrCat(actor, " silent from ", FormatSeconds(from),
                                 "s to ", FormatSeconds(now), "s"));
    }
  };
  for (const Event& e : log) {
    if (e.t > w.to) break;
    if (!StartsWith(e.actor, "sub") && !StartsWith(e.actor, "watch") &&
        !StartsWith(e.actor, "cand")) {
      continue;
    }
    State& s = state[e.actor];
    check(e.actor, s, e.t);
    switch (e.kind) {
      case Ev::kStreamOpen:
        s.open = true;
        s.leading = false;
        break;
      case Ev::kStreamEnd:
        s.open = false;
        s.leading = false;
        break;
      case Ev::kElected:
        s.leading = true;
        break;
      case Ev::kLost:
      case Ev::kFollowing:
        s.leading = false;
        break;
      default:
        break;
    }
    s.last = e.t;
  }
  for (auto& [actor, s] : state) check(actor, s, w.to);
  return out;
}

std::string WorstPublisher(const std::vector<Event>& log, Window w) {
  std::map<std::string, std::vector<absl::Duration>> oks;
  std::map<std::string, std::map<std::string, int>> failures;
  for (const Event& e : log) {
    if (e.kind == Ev::kPublishOk) oks[e.actor].push_back(e.t);
    if (e.kind == Ev::kPublishFail && e.t >= w.from && e.t <= w.to) {
      ++failures[e.actor][e.text];
    }
  }
  std::string worst;
  absl::Duration gap = absl::ZeroDuration();
  for (const auto& [actor, times] : oks) {
    const absl::Duration g = MaxGap(times, w);
    if (g > gap) {
      gap = g;
      worst = actor;
    }
  }
  std::string out = absl::StrCat(worst, ": no confirm for ", FormatSeconds(gap),
                                 "s; its failures:");
  for (const auto& [text, count] : failures[worst]) {
    absl::StrAppend(&out, " ", count, " x '", text, "'");
  }
  return out;
}

std::vector<std::string> UnexpectedStatuses(const std::vector<Event>& log,
                                            Window w) {
  std::vector<std::string> out;
  for (const Event& e : log) {
    if (e.t < w.from || e.t > w.to) continue;
    if (e.kind != Ev::kStreamEnd && e.kind != Ev::kPublishFail &&
        e.kind != Ev::kConfigFail) {
      continue;
    }
    switch (static_cast<grpc::StatusCode>(e.a)) {
      case grpc::StatusCode::OK:
      case grpc::StatusCode::CANCELLED:
      case grpc::StatusCode::DEADLINE_EXCEEDED:
      case grpc::StatusCode::ABORTED:
      case grpc::StatusCode::UNAVAILABLE:
        continue;
      default:
        break;
    }
    out.push_back(absl::StrCat(e.actor, " ", EvName(e.kind), " at ",
                               FormatSeconds(e.t), "s: code ", e.a, " ", e.id,
                               " ", e.text));
    if (out.size() >= 20) break;
  }
  return out;
}

}  // namespace warren::cluster
