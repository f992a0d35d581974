// The observer of the cluster fault suite: one log of everything every
// client saw, each event stamped with a monotonic time (steady clock, as an
// offset from the suite's start), and the checks that read it.
//
// Clients write events from their own threads; the fault driver reads
// running summaries (for awaiting recovery) and whole snapshots (for the
// invariants after each fault). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace warren::cluster {

enum class Ev {
  kPublishOk,    // id confirmed (OK)
  kPublishFail,  // id not confirmed; text: why
  kDelivery,     // id consumed; a = redelivered
  kStreamOpen,   // a stream of `actor` opened; text: replica
  kStreamEnd,    // it ended; text: status
  kHeartbeat,    // a heartbeat on a Subscribe, WatchConfig or Elect stream
  kConfigAck,    // id = value, a = version
  kConfigFail,   // id = value; text: status
  kWatchValue,   // id = value, a = version
  kElected,      // a = fencing token, b = heartbeat interval (ms)
  kLost,         // a = reason
  kFollowing,    // id = leader's candidate id
  kMark,         // the fault driver: text says what happened
};

const char* EvName(Ev kind);

struct Event {
  absl::Duration t;  // since the recorder's start (monotonic)
  Ev kind;
  std::string actor;
  std::string id;
  int64_t a = 0;
  int64_t b = 0;
  std::string text;
};

class Recorder {
 public:
  Recorder();

  absl::Duration Now() const;
  void Add(Ev kind, const std::string& actor, const std::string& id = "",
           int64_t a = 0, int64_t b = 0, const std::string& text = "");
  std::vector<Event> Snapshot();

  // Running summaries.
  // Ids confirmed so far that were never consumed.
  std::vector<std::string> Unconsumed();
  // Drops the consumed ids from *ids; true when none is left.
  bool StillUnconsumed(std::vector<std::string>* ids);
  size_t Duplicates();
  size_t Confirmed();
  // The last success (publish OK, delivery, config ack, watch value,
  // elected/heartbeat) of `actor`; InfinitePast when none.
  absl::Duration LastSuccess(const std::string& actor);
  // The last config write acknowledged: version and value (-1 if none).
  std::pair<int64_t, std::string> LastConfigAck();
  // The highest version a watcher has seen (-1 if none).
  int64_t WatchedVersion(const std::string& actor);

  // Writes the whole log, one event a line.
  void Dump(const std::string& path);

 private:
  const std::chrono::steady_clock::time_point start_;
  warren::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> confirmed_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, int> consumed_ ABSL_GUARDED_BY(mu_);
  size_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, absl::Duration> last_success_ ABSL_GUARDED_BY(mu_);
  std::pair<int64_t, std::string> last_ack_ ABSL_GUARDED_BY(mu_) = {-1, ""};
  std::map<std::string, int64_t> watched_ ABSL_GUARDED_BY(mu_);
};

// The analysis of a log (or of the part of it in a window).
struct Window {
  absl::Duration from;
  absl::Duration to;
};

// The longest stretch of [from, to] without an event in `times` (sorted).
absl::Duration MaxGap(const std::vector<absl::Duration>& times, Window w);

// Per kind of client, the longest time without success that any one client
// of that kind saw in the window: publishers (each), consumption (all
// subscribers together), config writes, and time without a leader's lease.
struct Unavailability {
  absl::Duration publish;
  absl::Duration subscribe;
  absl::Duration config;
  absl::Duration leader;
};
Unavailability MeasureUnavailability(const std::vector<Event>& log, Window w);

// A lease: from a proof (elected, heartbeat) to proof + 2 x the interval the
// server announced, cut short by lost, following or the stream's end.
struct Lease {
  std::string actor;
  absl::Duration from;
  absl::Duration to;
  int64_t token;
};
std::vector<Lease> Leases(const std::vector<Event>& log);

// Invariant violations, one line each ("" entries never).
std::vector<std::string> LeaseOverlaps(const std::vector<Event>& log);
std::vector<std::string> FencingViolations(const std::vector<Event>& log);
// Config: acknowledged versions must only grow, and whatever a watcher saw
// at an acknowledged version must be the value acknowledged there.
std::vector<std::string> ConfigViolations(const std::vector<Event>& log);
// Streams (Subscribe, WatchConfig, Elect while leading) that stayed silent
// longer than `bound` within the window.
std::vector<std::string> SilentStreams(const std::vector<Event>& log, Window w,
                                       absl::Duration bound);

// The publisher that went longest without a confirm in the window, and
// what its failures said.
std::string WorstPublisher(const std::vector<Event>& log, Window w);

// Calls and streams that failed with a status no fault explains: a fault may
// cost UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED or our own CANCELLED, never
// e.g. INVALID_ARGUMENT (our acks name delivered ids) or INTERNAL.
std::vector<std::string> UnexpectedStatuses(const std::vector<Event>& log,
                                            Window w);

std::string FormatSeconds(absl::Duration d);

}  // namespace warren::cluster
