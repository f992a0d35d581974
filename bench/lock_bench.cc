// LockService: acquire+release cycles per second through Warren's Lock
// stream, against the ZooKeeper lock recipe done directly with the C
// client (create an ephemeral-sequential node, list the children, watch the
// predecessor until it is gone, delete the node to release). Two shapes:
// one mutex contended by N clients (the hand-off from one holder to the
// next is the cost), and independent mutexes with one client each (the
// cost of an uncontended cycle, many at once).
//
// Every client is a thread doing blocking calls: a Lock stream per cycle
// (acquire, wait for `acquired`, release, wait for the stream's end), or
// its own ZooKeeper session, as separate processes would have.
#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "bench/scenarios.h"
#include "bench/zk_direct.h"
#include "warren/v1/lock.grpc.pb.h"

namespace warren::bench {
namespace {

// Clients cycling until told to stop; the first error is kept for the
// report.
class Cyclers {
 public:
  std::atomic<bool> stop{false};
  std::atomic<int64_t> cycles{0};

  void Fail(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    ++errors_;
    if (first_error_.ok()) first_error_ = status;
  }
  template <typename Cycle>
  void Run(int clients, Cycle cycle) {
    for (int i = 0; i < clients; ++i) {
      threads_.emplace_back([this, i, cycle] {
        while (!stop.load()) {
          if (absl::Status s = cycle(i); s.ok()) {
            cycles.fetch_add(1, std::memory_order_relaxed);
          } else {
            Fail(s);
            return;
          }
        }
      });
    }
  }
  void StopAndJoin() {
    stop.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  std::string Errors() {
    std::lock_guard<std::mutex> lock(mu_);
    if (errors_ == 0) return "";
    return absl::StrCat(errors_,
                        " client(s) stopped; first: ", first_error_.message());
  }

 private:
  std::vector<std::thread> threads_;
  std::mutex mu_;
  int errors_ = 0;
  absl::Status first_error_;
};

// One Warren cycle: a Lock stream that acquires, then releases.
absl::Status WarrenCycle(v1::LockService::Stub& stub, const std::string& name,
                         const std::string& holder) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  auto stream = stub.Lock(&context);
  v1::LockRequest request;
  request.mutable_acquire()->set_name(name);
  request.mutable_acquire()->set_holder_id(holder);
  v1::LockResponse response;
  bool acquired = false;
  if (stream->Write(request)) {
    while (stream->Read(&response)) {
      if (response.has_acquired()) {
        acquired = true;
        break;
      }
      if (response.has_lost()) break;
    }
  }
  if (acquired) {
    request.Clear();
    request.mutable_release();
    stream->Write(request);
  }
  stream->WritesDone();
  while (stream->Read(&response)) {
  }
  const grpc::Status status = stream->Finish();
  if (!acquired || !status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("Lock ", name, ": ", acquired ? "" : "not acquired; ",
                     status.error_code(), " ", status.error_message()));
  }
  return absl::OkStatus();
}

// The direct recipe's client: its own session, one node at a time.
class DirectLocker {
 public:
  static absl::StatusOr<std::unique_ptr<DirectLocker>> Connect(
      const std::string& zk) {
    auto session = ZkSession::Connect(zk, absl::Seconds(15));
    if (!session.ok()) return session.status();
    auto locker = std::unique_ptr<DirectLocker>(new DirectLocker);
    locker->session_ = *std::move(session);
    absl::BitGen random;
    // The recipe's protected form: a guid names this client's nodes.
    locker->prefix_ = absl::StrFormat(
        "c_%08x-%04x-%04x-%04x-%012x-", absl::Uniform<uint32_t>(random),
        absl::Uniform<uint16_t>(random), absl::Uniform<uint16_t>(random),
        absl::Uniform<uint16_t>(random),
        absl::Uniform<uint64_t>(random) & 0xffffffffffffULL);
    return locker;
  }

  absl::Status Cycle(const std::string& lock) {
    zhandle_t* zh = session_->get();
    char created[512];
    int rc = zoo_create(zh, absl::StrCat(lock, "/", prefix_).c_str(), "h", 1,
                        &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, created,
                        sizeof(created));
    if (rc != ZOK) return ZkError(rc, "create");
    const std::string own = std::string(created).substr(lock.size() + 1);
    for (;;) {
      String_vector children{0, nullptr};
      rc = zoo_get_children(zh, lock.c_str(), 0, &children);
      if (rc != ZOK) return ZkError(rc, "get_children");
      std::vector<std::string> names(children.data,
                                     children.data + children.count);
      deallocate_String_vector(&children);
      // Sequence order: the last ten characters.
      std::sort(names.begin(), names.end(),
                [](const std::string& a, const std::string& b) {
                  return a.substr(a.size() - 10) < b.substr(b.size() - 10);
                });
      const auto at = std::find(names.begin(), names.end(), own);
      if (at == names.end()) return absl::InternalError("own node is gone");
      if (at == names.begin()) break;  // holds the lock
      // Watch only the predecessor (no herd). A get sets the watch only
      // when the node exists; when it is gone already, list again.
      auto* gone = new absl::Notification;
      char ignored[8];
      int len = sizeof(ignored);
      rc = zoo_wget(zh, absl::StrCat(lock, "/", *(at - 1)).c_str(),
                    &DirectLocker::OnWatch, gone, ignored, &len, nullptr);
      if (rc == ZNONODE) {
        delete gone;
        continue;
      }
      if (rc != ZOK) return ZkError(rc, "get+watch predecessor");
      gone->WaitForNotification();
      delete gone;
    }
    rc = zoo_delete(zh, created, -1);
    return ZkError(rc, "delete");
  }

 private:
  DirectLocker() = default;
  static void OnWatch(zhandle_t*, int, int, const char*, void* context) {
    static_cast<absl::Notification*>(context)->Notify();
  }

  std::unique_ptr<ZkSession> session_;
  std::string prefix_;
};

struct Shape {
  Row* row;
  int clients;
  int mutexes;  // clients are spread evenly over them
};

double RunWarren(Env& env, const Shape& shape, const std::string& base,
                 CpuUsage* cpu, std::string* error) {
  std::vector<std::shared_ptr<grpc::Channel>> channels =
      env.Channels(shape.clients);
  std::vector<std::unique_ptr<v1::LockService::Stub>> stubs;
  for (const auto& channel : channels) {
    stubs.push_back(v1::LockService::NewStub(channel));
  }
  Cyclers cyclers;
  cyclers.Run(shape.clients, [&](int i) {
    return WarrenCycle(*stubs[i % stubs.size()],
                       absl::StrCat(base, "-", i % shape.mutexes),
                       absl::StrCat("c", i));
  });
  const double rate = env.Rate(cyclers.cycles, cpu);
  cyclers.StopAndJoin();
  *error = cyclers.Errors();
  return rate;
}

absl::StatusOr<double> RunDirect(Env& env, const Shape& shape,
                                 const std::string& base, CpuUsage* cpu,
                                 std::string* error) {
  std::vector<std::unique_ptr<DirectLocker>> lockers;
  for (int i = 0; i < shape.clients; ++i) {
    auto locker = DirectLocker::Connect(env.options.zk);
    if (!locker.ok()) return locker.status();
    lockers.push_back(*std::move(locker));
  }
  auto admin = ZkSession::Connect(env.options.zk, absl::Seconds(15));
  if (!admin.ok()) return admin.status();
  for (int m = 0; m < shape.mutexes; ++m) {
    if (absl::Status s = (*admin)->Put(absl::StrCat(base, "-", m), "");
        !s.ok()) {
      return s;
    }
  }
  Cyclers cyclers;
  cyclers.Run(shape.clients, [&](int i) {
    return lockers[i]->Cycle(absl::StrCat(base, "-", i % shape.mutexes));
  });
  const double rate = env.Rate(cyclers.cycles, cpu);
  cyclers.StopAndJoin();
  *error = cyclers.Errors();
  return rate;
}

}  // namespace

absl::Status RunLock(Env& env) {
  const Options& o = env.options;
  Row& contended = env.report.Add(
      "lock",
      absl::StrFormat("Lock: one mutex, %d clients contending: acquire+release "
                      "cycles (direct: ZooKeeper lock recipe, a session each)",
                      o.lock_clients),
      "cycles/s", Better::kHigher);
  Row& independent = env.report.Add(
      "lock",
      absl::StrFormat("Lock: %d mutexes, one client each: acquire+release "
                      "cycles (direct: same recipe)",
                      o.lock_mutexes),
      "cycles/s", Better::kHigher);
  const Shape shapes[] = {{&contended, o.lock_clients, 1},
                          {&independent, o.lock_mutexes, o.lock_mutexes}};
  int index = 0;
  for (const Shape& shape : shapes) {
    for (int run = 0; run < o.runs; ++run) {
      const std::string tag = absl::StrCat("lock", index, "r", run);
      for (int side = 0; side < 2; ++side) {
        // The sides alternate which goes first from run to run.
        const bool warren = (side == 0) == (run % 2 == 0);
        CpuUsage cpu;
        std::string error;
        if (warren) {
          const double rate = RunWarren(
              env, shape, absl::StrCat(o.prefix, "-", tag), &cpu, &error);
          shape.row->warren.push_back(rate);
          shape.row->warren_cpu.push_back(cpu);
        } else {
          auto rate = RunDirect(
              env, shape, absl::StrCat(o.direct_root, "/", tag), &cpu, &error);
          if (!rate.ok()) return rate.status();
          shape.row->direct.push_back(*rate);
          shape.row->direct_cpu.push_back(cpu);
        }
        if (!error.empty()) {
          shape.row->notes.push_back(absl::StrCat(
              warren ? "Warren" : "direct", " run ", run + 1, ": ", error));
        }
      }
    }
    ++index;
  }
  contended.notes.push_back(
      "a cycle is acquire (waiting in line) then release; one mutex's "
      "throughput is its hand-off rate: the holder's delete, the next "
      "waiter's watch, its check that it is first. Warren opens a Lock "
      "stream per cycle and adds its hops (client to warrend, warrend's "
      "reads of the node and its data)");
  return absl::OkStatus();
}

}  // namespace warren::bench
