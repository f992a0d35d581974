// What the fuzz targets share: the step encoding of the stream fuzzers'
// inputs (seeds.cc writes the same), a callback client stream a fuzzer can
// drive step by step, a pump thread for the fakes, and checks that abort
// (libFuzzer then reports the input).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/client_callback.h"
#include "server/common/logging.h"

namespace warren::fuzz {

// Aborts with `what` when `ok` is false: a broken invariant is a finding.
inline void Check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "FUZZ INVARIANT BROKEN: %s\n", what.c_str());
  std::abort();
}

// For LLVMFuzzerInitialize: no log lines per input (protobuf's about
// invalid UTF-8 in string fields, the server's info lines); findings abort
// with their own message.
inline void QuietLogs() {
  google::protobuf::SetLogHandler(nullptr);
  Check(InitLogging("off", false).ok(), "logging would not turn off");
}

// Waits (polling) until `done()` or `timeout`; answers done().
inline bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > end) return done();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// A stream fuzzer's input: steps of one byte of operation, two bytes of
// argument length (little-endian), the argument (usually a serialized
// request). A truncated step ends the input.
struct Step {
  uint8_t op = 0;
  std::string_view arg;
  // The argument's first byte, for small choices.
  uint8_t flags() const { return arg.empty() ? 0 : uint8_t(arg[0]); }
};

class StepReader {
 public:
  StepReader(const uint8_t* data, size_t size)
      : data_(reinterpret_cast<const char*>(data)), size_(size) {}
  bool Next(Step* step) {
    if (size_ - pos_ < 3) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(data_ + pos_);
    const size_t len = p[1] | (size_t{p[2]} << 8);
    if (size_ - pos_ - 3 < len) return false;
    step->op = p[0];
    step->arg = std::string_view(data_ + pos_ + 3, len);
    pos_ += 3 + len;
    return true;
  }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

inline void AppendStep(std::string* out, uint8_t op, std::string_view arg) {
  out->push_back(static_cast<char>(op));
  out->push_back(static_cast<char>(arg.size() & 0xff));
  out->push_back(static_cast<char>((arg.size() >> 8) & 0xff));
  out->append(arg);
}

// Runs `step` over and over on a thread of its own (the fakes' queued
// callbacks), resting briefly whenever it found nothing to do.
class Pump {
 public:
  explicit Pump(std::function<bool()> step)
      : thread_([this, step = std::move(step)] {
          while (!stop_.load()) {
            if (!step())
              std::this_thread::sleep_for(std::chrono::microseconds(50));
          }
        }) {}
  ~Pump() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// One bidirectional call driven by a fuzzer: one write at a time, every
// response kept, the final status. Lives until OnDone (Await).
template <typename Request, typename Response>
class ClientStream final : public grpc::ClientBidiReactor<Request, Response> {
 public:
  // `start` binds the call to this reactor: stub->async()->Method(ctx, this).
  template <typename StartFn>
  ClientStream(StartFn start, absl::Duration deadline) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    start(&context_, this);
    // Held until AwaitDone: OnDone (after which no operation may be
    // started) cannot come while the fuzzer may still write.
    this->AddHold();
    this->StartRead(&response_);
    this->StartCall();
  }

  // Sends one request; false when the call ended first (or will not take
  // any more).
  bool Write(const Request& request) {
    std::unique_lock<std::mutex> lock(mu_);
    if (writes_done_) return false;
    request_ = request;
    writing_ = true;
    this->StartWrite(&request_);
    cv_.wait(lock, [&] { return !writing_; });
    return write_ok_;
  }
  void WritesDone() {
    std::unique_lock<std::mutex> lock(mu_);
    if (writes_done_) return;
    writes_done_ = true;
    this->StartWritesDone();
  }
  void Cancel() { context_.TryCancel(); }

  // Waits until more than `count` responses came or the call ended.
  void AwaitResponses(size_t count, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
      return done_ || reads_ended_ || responses_.size() > count;
    });
  }
  // Waits for a response that `match` accepts (or the end of the call).
  void AwaitResponse(const std::function<bool(const Response&)>& match,
                     absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
      if (done_ || reads_ended_) return true;
      for (const auto& r : responses_) {
        if (match(r)) return true;
      }
      return false;
    });
  }
  // Lets the call end and waits for that; false if it did not end in time.
  // No write after this.
  bool AwaitDone(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!released_) {
      released_ = true;
      writes_done_ = true;  // no write any more
      this->RemoveHold();
    }
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                        [&] { return done_; });
  }

  std::vector<Response> responses() {
    std::unique_lock<std::mutex> lock(mu_);
    return std::vector<Response>(responses_.begin(), responses_.end());
  }
  size_t response_count() {
    std::unique_lock<std::mutex> lock(mu_);
    return responses_.size();
  }
  // The server ended the call (its responses are all read).
  bool done() {
    std::unique_lock<std::mutex> lock(mu_);
    return done_ || reads_ended_;
  }
  bool writes_done() {
    std::unique_lock<std::mutex> lock(mu_);
    return writes_done_;
  }
  grpc::Status status() {
    std::unique_lock<std::mutex> lock(mu_);
    return status_;
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      std::unique_lock<std::mutex> lock(mu_);
      reads_ended_ = true;
      cv_.notify_all();
      return;
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      responses_.push_back(response_);
      cv_.notify_all();
    }
    this->StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    std::unique_lock<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }

 private:
  grpc::ClientContext context_;
  Request request_;
  Response response_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;
  bool write_ok_ = false;
  bool writes_done_ = false;
  bool reads_ended_ = false;
  bool released_ = false;
  bool done_ = false;
  grpc::Status status_;
  std::deque<Response> responses_;
};

// The end of a fuzzed call: it ended (after the client half-closed) with one
// of `allowed` (CANCELLED only if the client cancelled), and an error has a
// message. Answers a description for later checks' messages.
template <typename Stream>
std::string CheckEnded(Stream& stream, const std::string& method,
                       std::initializer_list<grpc::StatusCode> allowed,
                       bool cancelled) {
  Check(stream.AwaitDone(absl::Seconds(30)),
        method + " did not end after the client half-closed");
  const grpc::Status status = stream.status();
  const grpc::StatusCode code = status.error_code();
  const std::string where = method + " ended with " +
                            std::to_string(static_cast<int>(code)) + " '" +
                            status.error_message() + "'";
  bool ok = code == grpc::StatusCode::OK ||
            (code == grpc::StatusCode::CANCELLED && cancelled);
  for (grpc::StatusCode a : allowed) ok = ok || code == a;
  Check(ok, where + ": not a status docs/semantics.md gives this call");
  Check(code == grpc::StatusCode::OK || !status.error_message().empty(),
        where + ": an error without a message");
  return where;
}

// The server of a stream fuzzer: in-process, built once per process.
inline std::unique_ptr<grpc::Server> StartInProcessServer(
    const std::vector<grpc::Service*>& services) {
  grpc::ServerBuilder builder;
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  Check(server != nullptr, "the in-process gRPC server did not start");
  return server;
}

}  // namespace warren::fuzz

namespace warren::fuzz {
// Each target's work per input (defined by the target).
void FuzzOne(const uint8_t* data, size_t size);
}  // namespace warren::fuzz

// The libFuzzer entry points of a target: FuzzOne.
#define WARREN_FUZZ_ENTRY_POINTS                                            \
  extern "C" int LLVMFuzzerInitialize(int*, char***) {                      \
    warren::fuzz::QuietLogs();                                              \
    return 0;                                                               \
  }                                                                         \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    warren::fuzz::FuzzOne(data, size);                                      \
    return 0;                                                               \
  }
