// End-to-end tests of the `warren` CLI: the real binary, run as a child
// process the way a shell script runs it, against a real warrend on the
// shared ZooKeeper and RabbitMQ. They check what scripts rely on: the
// output (human and --json, parsed back into the API's messages), and every
// exit code of the table in README.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "warren/v1/config.pb.h"
#include "warren/v1/election.pb.h"
#include "warren/v1/lock.pb.h"
#include "warren/v1/messaging.pb.h"

extern char** environ;

namespace warren::testing {
namespace {

constexpr int kOk = 0;
constexpr int kUsage = 2;
constexpr int kNotFound = 3;
constexpr int kPrecondition = 4;
constexpr int kUnavailable = 5;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// A name no other test run uses: queues and exchanges live on the shared
// broker.
std::string Unique(const std::string& base) {
  static std::atomic<int> counter{0};
  return absl::StrCat(base, "-", getpid(), "-", counter++, "-",
                      absl::ToUnixMicros(absl::Now()) % 1000000);
}

template <typename Message>
Message ParseJson(const std::string& line) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(line, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in: " << line;
  return message;
}

struct RunOptions {
  std::string stdin_text;
  // Extra environment; WARREN_ADDRESS is removed unless given here, so that
  // each test says which server it means.
  std::vector<std::string> env;
};

// The binary under test: the one built beside this test, unless
// $WARREN_CLI names another (e.g. a sanitizer build of it).
std::string CliBinary() {
  const char* other = std::getenv("WARREN_CLI");
  return other != nullptr && *other != '\0' ? other : WARREN_CLI_PATH;
}

RunOptions Stdin(const std::string& text) {
  RunOptions options;
  options.stdin_text = text;
  return options;
}

// `warren` as a child process, its stdout and stderr in files.
class CliProcess {
 public:
  static std::unique_ptr<CliProcess> Start(const std::vector<std::string>& args,
                                           const RunOptions& options = {}) {
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    ChildProcess::Options child;
    child.stdin_text = options.stdin_text;
    child.unset_env = {"WARREN_ADDRESS"};
    child.set_env = options.env;
    child.dir_prefix = "warren-cli";
    std::unique_ptr<CliProcess> p(new CliProcess);
    p->child_ = ChildProcess::Start(argv, child);
    return p;
  }

  std::string Stdout() const { return child_->Stdout(); }
  std::string Stderr() const { return child_->Stderr(); }
  std::vector<std::string> StdoutLines() const { return Lines(Stdout()); }

  // Waits until stdout has at least `n` lines.
  bool WaitForLines(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    return WaitFor([&] { return StdoutLines().size() >= n; }, timeout);
  }
  bool WaitForOutput(const std::string& text,
                     absl::Duration timeout = absl::Seconds(30)) {
    return child_->WaitForStdout(text, timeout);
  }

  void Signal(int sig) { child_->Signal(sig); }

  // The exit code, 128 + signal when killed by one, or -1 when it did not
  // end within `timeout` (it is killed then).
  int Wait(absl::Duration timeout = absl::Seconds(60)) {
    return child_->Wait(timeout);
  }

 private:
  CliProcess() = default;
  std::unique_ptr<ChildProcess> child_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
  std::vector<std::string> lines() const { return Lines(out); }
};

Result RunWarren(const std::vector<std::string>& args,
                 const RunOptions& options = {}) {
  auto process = CliProcess::Start(args, options);
  Result result;
  result.code = process->Wait();
  result.out = process->Stdout();
  result.err = process->Stderr();
  return result;
}

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.code << "\nstdout:\n"
            << r.out << "stderr:\n"
            << r.err;
}

struct CliFlags {
  static std::vector<std::string> Args() {
    return {"--heartbeat_interval=1s", "--log_level=warn"};
  }
};

class CliTest : public SharedWarrendTest<CliFlags> {
 protected:
  // `warren --server=<our warrend> args...`
  static Result Cli(std::vector<std::string> args,
                    const RunOptions& options = {}) {
    args.insert(args.begin(), "--server=" + warrend_->address());
    return RunWarren(args, options);
  }
  static std::unique_ptr<CliProcess> StartCli(std::vector<std::string> args,
                                              const RunOptions& options = {}) {
    args.insert(args.begin(), "--server=" + warrend_->address());
    return CliProcess::Start(args, options);
  }
  // Waits for the `subscribed` line of a `subscribe --json`.
  static void AwaitSubscribed(CliProcess& sub) {
    ASSERT_TRUE(sub.WaitForLines(1)) << sub.Stderr();
    auto first = ParseJson<v1::SubscribeResponse>(sub.StdoutLines()[0]);
    ASSERT_TRUE(first.has_subscribed()) << sub.StdoutLines()[0];
  }
};

// ------------------------------------------------------------------ help

TEST_F(CliTest, EveryCommandHasHelp) {
  Result main_help = RunWarren({"--help"});
  EXPECT_EQ(main_help.code, kOk) << main_help;
  EXPECT_TRUE(absl::StrContains(main_help.out, "Exit codes:")) << main_help;
  EXPECT_EQ(RunWarren({"help"}).out, main_help.out);
  for (std::string command :
       {"publish", "call", "subscribe", "respond", "elect", "leader", "lock",
        "lock get", "config get", "config put", "config delete", "config list",
        "config watch", "config txn", "config hold"}) {
    std::vector<std::string> words = absl::StrSplit(command, ' ');
    std::vector<std::string> help_args = {"help"};
    help_args.insert(help_args.end(), words.begin(), words.end());
    Result via_help = RunWarren(help_args);
    EXPECT_EQ(via_help.code, kOk) << command << ": " << via_help;
    EXPECT_TRUE(absl::StartsWith(via_help.out, "Usage: warren " + command))
        << via_help;
    words.push_back("--help");
    Result via_flag = RunWarren(words);
    EXPECT_EQ(via_flag.code, kOk) << command << ": " << via_flag;
    EXPECT_EQ(via_flag.out, via_help.out);
    // Help calls no server.
    EXPECT_EQ(via_flag.err, "");
  }
  Result group = RunWarren({"config", "--help"});
  EXPECT_EQ(group.code, kOk) << group;
  EXPECT_TRUE(absl::StrContains(group.out, "config watch")) << group;
}

// --------------------------------------------------------------- usage: 2

TEST_F(CliTest, UsageErrorsExitTwo) {
  const std::vector<std::vector<std::string>> wrong = {
      {},
      {"frobnicate"},
      {"config"},
      {"config", "frobnicate"},
      {"config", "get"},
      {"config", "get", "a", "b"},
      {"config", "get", "key", "--bogus"},
      {"--bogus", "config", "get", "key"},
      {"--timeout=soon", "config", "get", "key"},
      {"config", "get", "key", "--timeout"},
      {"config", "put", "k", "v", "--expect-version=1", "--create-only"},
      {"config", "put", "k", "v", "--expect-version=one"},
      {"config", "watch"},
      {"publish", "--queue=q", "x", "--priority=300"},
      {"publish", "--queue=q", "x", "--header=novalue"},
      {"publish", "exchange-only"},
      {"subscribe"},
      {"subscribe", "q", "--group=g"},
      {"subscribe", "q", "--max=0"},
      {"elect"},
      {"elect", "e", "--heartbeat-interval=1ms"},
      {"leader"},
      {"lock"},
      {"lock", "name"},
      {"lock", "name", "true"},
      {"lock", "--", "true"},
      {"lock", "a", "b", "--", "true"},
      {"lock", "name", "--limit=0", "--", "true"},
      {"lock", "name", "--no-wait", "--timeout=1s", "--", "true"},
      {"lock", "get"},
      {"config", "txn"},
      {"config", "txn", "--put=novalue"},
      {"config", "txn", "--if-version=k=one", "--put=k=v"},
      {"config", "txn", "-", "--put=k=v"},
      {"config", "put", "k", "v", "--fence-token=5"},
      {"config", "put", "k", "v", "--fence-lock=l"},
      {"config", "put", "k", "v", "--fence-lock=l", "--fence-election=e",
       "--fence-token=1"},
      {"config", "put", "k", "v", "--fence-lock=l", "--fence-token=0"},
      {"config", "delete", "k", "--fenced"},
      {"publish", "--queue=q", "x", "--fence-election=e"},
      {"config", "hold"},
      {"call"},
      {"publish", "--queue=q", "x", "--delay=-1s"},
      {"subscribe", "q", "--offset=yesterday"},
      {"subscribe", "q", "--match-header=format=pdf"},
      {"subscribe", "--exchange=e", "--match-header=novalue"},
      {"subscribe", "q", "--max-priority=-1"},
      {"subscribe", "q", "--queue-type=log"},
      {"respond", "q", "--"},
  };
  for (const auto& args : wrong) {
    Result r = Cli(args);
    EXPECT_EQ(r.code, kUsage) << absl::StrJoin(args, " ") << "\n" << r;
    EXPECT_TRUE(absl::StartsWith(r.err, "warren: ") ||
                absl::StartsWith(r.err, "Usage: "))
        << r;
  }
  // The server's INVALID_ARGUMENT is a usage error too: the same command
  // can never succeed.
  Result bad_key = Cli({"config", "get", "a//b"});
  EXPECT_EQ(bad_key.code, kUsage) << bad_key;
  EXPECT_TRUE(absl::StartsWith(bad_key.err, "warren: INVALID_ARGUMENT: "))
      << bad_key;
}

// ---------------------------------------------------------------- config

TEST_F(CliTest, ConfigPutGetCompareAndSetDelete) {
  Result put = Cli({"--json", "config", "put", "app/x", "one"});
  ASSERT_EQ(put.code, kOk) << put;
  ASSERT_EQ(put.lines().size(), 1u) << put;
  auto entry = ParseJson<v1::ConfigEntry>(put.lines()[0]);
  EXPECT_EQ(entry.key(), "app/x");
  EXPECT_EQ(entry.value(), "one");
  EXPECT_EQ(entry.version(), 0);
  // Even at version 0 the field is there for scripts to read.
  EXPECT_TRUE(absl::StrContains(put.out, "\"version\":\"0\"")) << put;

  Result get = Cli({"config", "get", "app/x"});
  EXPECT_EQ(get.code, kOk) << get;
  EXPECT_EQ(get.out, "one\n");
  // Global options may also follow the command.
  Result get_json = Cli({"config", "get", "app/x", "--json", "--consistent"});
  EXPECT_EQ(get_json.code, kOk) << get_json;
  EXPECT_EQ(ParseJson<v1::ConfigEntry>(get_json.out).value(), "one");

  Result cas = Cli({"config", "put", "app/x", "two", "--expect-version=0"});
  EXPECT_EQ(cas.code, kOk) << cas;
  EXPECT_EQ(cas.out, "app/x: version 1\n");

  Result stale = Cli({"config", "put", "app/x", "three", "--expect-version=0"});
  EXPECT_EQ(stale.code, kPrecondition) << stale;
  EXPECT_TRUE(absl::StartsWith(stale.err, "warren: FAILED_PRECONDITION: "))
      << stale;
  Result exists = Cli({"config", "put", "app/x", "three", "--create-only"});
  EXPECT_EQ(exists.code, kPrecondition) << exists;
  EXPECT_TRUE(absl::StartsWith(exists.err, "warren: ALREADY_EXISTS: "))
      << exists;
  EXPECT_EQ(Cli({"config", "get", "app/x"}).out, "two\n");

  ASSERT_EQ(Cli({"config", "put", "app/x/child", "c"}).code, kOk);
  Result wrong_version =
      Cli({"config", "delete", "app/x", "--recursive", "--expect-version=0"});
  EXPECT_EQ(wrong_version.code, kPrecondition) << wrong_version;
  // Without --recursive, a key with children keeps them and is no longer a
  // key (a namespace node, as a parent that was never put).
  Result unkeyed = Cli({"config", "delete", "app/x"});
  EXPECT_EQ(unkeyed.code, kOk) << unkeyed;
  EXPECT_EQ(Cli({"config", "get", "app/x"}).code, kNotFound);
  EXPECT_EQ(Cli({"config", "get", "app/x/child"}).out, "c\n");
  EXPECT_EQ(Cli({"config", "list", "app", "--keys-only"}).out, "app/x/child\n");
  Result deleted = Cli({"--json", "config", "delete", "app/x/child"});
  EXPECT_EQ(deleted.code, kOk) << deleted;
  auto deleted_json = ParseJson<google::protobuf::Struct>(deleted.out);
  EXPECT_EQ(deleted_json.fields().at("key").string_value(), "app/x/child");
  EXPECT_TRUE(deleted_json.fields().at("deleted").bool_value());

  Result gone = Cli({"config", "get", "app/x/child"});
  EXPECT_EQ(gone.code, kNotFound) << gone;
  EXPECT_TRUE(absl::StartsWith(gone.err, "warren: NOT_FOUND: ")) << gone;
  EXPECT_EQ(gone.out, "");
  EXPECT_EQ(Cli({"config", "delete", "app/x"}).code, kNotFound);

  // --recursive takes the subtree with it.
  ASSERT_EQ(Cli({"config", "put", "app/y", "1"}).code, kOk);
  ASSERT_EQ(Cli({"config", "put", "app/y/z", "2"}).code, kOk);
  EXPECT_EQ(Cli({"config", "delete", "app/y", "--recursive"}).code, kOk);
  EXPECT_EQ(Cli({"config", "get", "app/y/z"}).code, kNotFound);
}

TEST_F(CliTest, ConfigValueFromStdinIsKeptByteForByte) {
  const std::string value = "line one\nline two\ttab \x01 end";
  Result put = Cli({"config", "put", "stdin/key"}, Stdin(value));
  ASSERT_EQ(put.code, kOk) << put;
  Result raw = Cli({"config", "get", "stdin/key", "--raw"});
  EXPECT_EQ(raw.code, kOk) << raw;
  EXPECT_EQ(raw.out, value);
  Result json = Cli({"--json", "config", "get", "stdin/key"});
  EXPECT_EQ(ParseJson<v1::ConfigEntry>(json.out).value(), value);
  // The human listing keeps one entry per line.
  Result list = Cli({"config", "list", "stdin/key"});
  EXPECT_EQ(list.out,
            "stdin/key = \"line one\\nline two\\ttab \\001 end\" "
            "(version 0)\n")
      << list;
}

TEST_F(CliTest, ConfigListFollowsOrHandsOutPages) {
  for (int i = 1; i <= 5; ++i) {
    ASSERT_EQ(
        Cli({"config", "put", absl::StrCat("list/k", i), absl::StrCat("v", i)})
            .code,
        kOk);
  }
  Result all = Cli({"--json", "config", "list", "list", "--page-size=2"});
  ASSERT_EQ(all.code, kOk) << all;
  // Only what was put: the parent "list", which the first put created, is
  // a namespace, not a key.
  ASSERT_EQ(all.lines().size(), 5u) << all;
  for (int i = 1; i <= 5; ++i) {
    auto entry = ParseJson<v1::ConfigEntry>(all.lines()[i - 1]);
    EXPECT_EQ(entry.key(), absl::StrCat("list/k", i));
    EXPECT_EQ(entry.value(), absl::StrCat("v", i));
  }

  Result page = Cli(
      {"--json", "config", "list", "list", "--page-size=2", "--single-page"});
  ASSERT_EQ(page.code, kOk) << page;
  ASSERT_EQ(page.lines().size(), 3u) << page;
  auto token = ParseJson<google::protobuf::Struct>(page.lines()[2])
                   .fields()
                   .at("nextPageToken")
                   .string_value();
  ASSERT_FALSE(token.empty()) << page;
  Result next = Cli({"config", "list", "list", "--page-size=2", "--single-page",
                     "--keys-only", "--page-token=" + token});
  ASSERT_EQ(next.code, kOk) << next;
  EXPECT_EQ(next.out, "list/k3\nlist/k4\n");
  EXPECT_TRUE(absl::StrContains(next.err, "next page: --page-token=")) << next;

  Result human = Cli({"config", "list", "list/k5"});
  EXPECT_EQ(human.out, "list/k5 = v5 (version 0)\n") << human;
  Result none = Cli({"config", "list", "nothing/here"});
  EXPECT_EQ(none.code, kOk) << none;
  EXPECT_EQ(none.out, "");
}

// Every event printed by a `config watch --json` so far, the initial state
// first.
std::vector<v1::ConfigEvent> WatchEvents(const CliProcess& watch) {
  std::vector<v1::ConfigEvent> events;
  for (const std::string& line : watch.StdoutLines()) {
    auto response = ParseJson<v1::WatchConfigResponse>(line);
    events.insert(events.end(), response.events().begin(),
                  response.events().end());
  }
  return events;
}

bool HasEvent(const CliProcess& watch, v1::ConfigEventType type,
              const std::string& key) {
  for (const v1::ConfigEvent& event : WatchEvents(watch)) {
    if (event.type() == type && event.entry().key() == key) return true;
  }
  return false;
}

TEST_F(CliTest, ConfigWatchPrintsStateThenChangesUntilStopped) {
  ASSERT_EQ(Cli({"config", "put", "watched/a", "1"}).code, kOk);
  auto watch = StartCli({"--json", "config", "watch", "watched", "--prefix"});
  ASSERT_TRUE(watch->WaitForLines(1)) << watch->Stderr();
  auto initial = ParseJson<v1::WatchConfigResponse>(watch->StdoutLines()[0]);
  EXPECT_TRUE(initial.initial_state());
  // Only the key put: its parent "watched" is a namespace, not a key.
  ASSERT_EQ(initial.events_size(), 1) << watch->Stdout();
  EXPECT_EQ(initial.events(0).entry().key(), "watched/a");
  EXPECT_EQ(initial.events(0).entry().value(), "1");

  ASSERT_EQ(Cli({"config", "put", "watched/b/deep", "2"}).code, kOk);
  ASSERT_TRUE(WaitFor(
      [&] {
        return HasEvent(*watch, v1::CONFIG_EVENT_TYPE_PUT, "watched/b/deep");
      },
      absl::Seconds(30)))
      << watch->Stdout();
  auto second = ParseJson<v1::WatchConfigResponse>(watch->StdoutLines()[1]);
  EXPECT_FALSE(second.initial_state());
  // Its new parent watched/b is no key: no event for it.
  EXPECT_FALSE(HasEvent(*watch, v1::CONFIG_EVENT_TYPE_PUT, "watched/b"));
  for (const auto& event : WatchEvents(*watch)) {
    if (event.entry().key() == "watched/b/deep") {
      EXPECT_EQ(event.entry().value(), "2");
    }
  }

  ASSERT_EQ(Cli({"config", "delete", "watched/a"}).code, kOk);
  ASSERT_TRUE(WaitFor(
      [&] {
        return HasEvent(*watch, v1::CONFIG_EVENT_TYPE_DELETE, "watched/a");
      },
      absl::Seconds(30)))
      << watch->Stdout();
  const size_t printed = watch->StdoutLines().size();

  watch->Signal(SIGTERM);
  EXPECT_EQ(watch->Wait(), kOk) << watch->Stderr();
  // Nothing else was printed (heartbeats, every second on this server,
  // are not).
  EXPECT_EQ(watch->StdoutLines().size(), printed) << watch->Stdout();
}

TEST_F(CliTest, ConfigWatchMaxEndsAfterThatManyChanges) {
  auto watch = StartCli({"config", "watch", "single", "--max=1"});
  ASSERT_TRUE(WaitFor(
      [&] { return absl::StrContains(watch->Stderr(), "watching: 0 keys"); },
      absl::Seconds(30)))
      << watch->Stderr();
  ASSERT_EQ(Cli({"config", "put", "single", "x y"}).code, kOk);
  EXPECT_EQ(watch->Wait(), kOk) << watch->Stderr();
  EXPECT_EQ(watch->Stdout(), "PUT single = x y (version 0)\n");
}

// ------------------------------------------------------------- messaging

TEST_F(CliTest, PublishedMessagesAreSubscribedAndAcked) {
  const std::string queue = Unique("cli-queue");
  auto sub = StartCli({"--json", "subscribe", queue, "--max=2"});
  AwaitSubscribed(*sub);

  Result first = Cli({"--json", "publish", "--queue=" + queue, "hello world",
                      "--header=trace=t-1", "--header=lang=shell"});
  ASSERT_EQ(first.code, kOk) << first;
  const std::string first_id =
      ParseJson<v1::PublishResponse>(first.out).message_id();
  EXPECT_EQ(first_id.size(), 36u) << first;  // a UUID

  const std::string binary = std::string("bin\0ary\n", 8);
  Result second = Cli({"publish", "", queue, "--message-id=my-id-1",
                       "--content-type=application/octet-stream"},
                      Stdin(binary));
  ASSERT_EQ(second.code, kOk) << second;
  EXPECT_EQ(second.out, "published my-id-1\n");

  ASSERT_EQ(sub->Wait(), kOk) << sub->Stderr();
  auto lines = sub->StdoutLines();
  ASSERT_EQ(lines.size(), 3u) << sub->Stdout();
  auto d1 = ParseJson<v1::SubscribeResponse>(lines[1]).delivery();
  auto d2 = ParseJson<v1::SubscribeResponse>(lines[2]).delivery();
  EXPECT_EQ(d1.payload(), "hello world");
  EXPECT_EQ(d1.message_id(), first_id);
  EXPECT_EQ(d1.routing_key(), queue);
  EXPECT_EQ(d1.headers().at("trace"), "t-1");
  EXPECT_EQ(d1.headers().at("lang"), "shell");
  EXPECT_FALSE(d1.redelivered());
  EXPECT_EQ(d2.payload(), binary);
  EXPECT_EQ(d2.message_id(), "my-id-1");
  EXPECT_EQ(d2.content_type(), "application/octet-stream");

  // Both were acked: only a new message comes next, and then nothing.
  ASSERT_EQ(Cli({"publish", "--queue=" + queue, "third"}).code, kOk);
  Result next = Cli({"subscribe", queue, "--max=1"});
  EXPECT_EQ(next.code, kOk) << next;
  EXPECT_TRUE(absl::StartsWith(next.out, "third  (routing_key=" + queue))
      << next;
  EXPECT_FALSE(absl::StrContains(next.out, "redelivered")) << next;
  EXPECT_TRUE(absl::StrContains(next.err, "subscribed to queue " + queue))
      << next;
  Result empty = Cli({"--timeout=1s", "subscribe", queue});
  EXPECT_EQ(empty.code, kUnavailable) << empty;
  EXPECT_EQ(empty.out, "");
  EXPECT_TRUE(absl::StrContains(empty.err, "\nwarren: DEADLINE_EXCEEDED: "))
      << empty;

  auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto ready = (*admin)->ReadyCount(queue);
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(*ready, 0u);
  EXPECT_TRUE((*admin)->DeleteQueue(queue).ok());
}

TEST_F(CliTest, CallIsAnsweredByRespondRunningACommand) {
  const std::string queue = Unique("cli-respond");
  auto responder =
      StartCli({"respond", queue, "--max=2", "--", "tr", "a-z", "A-Z"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(responder->Stderr(),
                                 "responding on queue " + queue);
      },
      absl::Seconds(30)))
      << responder->Stderr();
  Result call = Cli({"call", "--queue=" + queue, "hello"});
  EXPECT_EQ(call.code, kOk) << call;
  EXPECT_EQ(call.out, "HELLO\n");
  Result json = Cli({"--json", "call", "", queue, "-"}, Stdin("bytes\n"));
  EXPECT_EQ(json.code, kOk) << json;
  const auto reply = ParseJson<v1::CallResponse>(json.out).reply();
  EXPECT_EQ(reply.payload(), "BYTES\n");
  EXPECT_FALSE(reply.correlation_id().empty()) << json;
  EXPECT_EQ(responder->Wait(), kOk) << responder->Stderr();
  EXPECT_EQ(responder->StdoutLines().size(), 2u) << responder->Stdout();

  // Nobody answers now: DEADLINE_EXCEEDED, exit 5, not retried.
  Result unanswered = Cli({"--timeout=1s", "call", "--queue=" + queue, "x"});
  EXPECT_EQ(unanswered.code, kUnavailable) << unanswered;
  EXPECT_TRUE(absl::StrContains(unanswered.err, "no reply within 1s"))
      << unanswered;
  auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE((*admin)->DeleteQueue(queue).ok());
}

TEST_F(CliTest, ADelayedPublishArrivesAfterItsDelay) {
  const std::string queue = Unique("cli-delay");
  auto sub = StartCli({"--json", "subscribe", queue, "--max=1"});
  AwaitSubscribed(*sub);
  const absl::Time sent = absl::Now();
  Result publish = Cli({"publish", "--queue=" + queue, "later", "--delay=1s"});
  ASSERT_EQ(publish.code, kOk) << publish;
  ASSERT_EQ(sub->Wait(), kOk) << sub->Stderr();
  EXPECT_GE(absl::Now() - sent, absl::Seconds(1));
  auto lines = sub->StdoutLines();
  ASSERT_EQ(lines.size(), 2u) << sub->Stdout();
  EXPECT_EQ(ParseJson<v1::SubscribeResponse>(lines[1]).delivery().payload(),
            "later");
  auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE((*admin)->DeleteQueue(queue).ok());
}

TEST_F(CliTest, SubscribeReplaysAStreamFromAnOffset) {
  const std::string queue = Unique("cli-stream");
  auto live = StartCli(
      {"--json", "subscribe", queue, "--queue-type=stream", "--max=3"});
  AwaitSubscribed(*live);
  for (const char* payload : {"e0", "e1", "e2"}) {
    ASSERT_EQ(Cli({"publish", "--queue=" + queue, payload}).code, kOk);
  }
  ASSERT_EQ(live->Wait(), kOk) << live->Stderr();

  Result replay = Cli(
      {"subscribe", queue, "--queue-type=stream", "--offset=first", "--max=3"});
  EXPECT_EQ(replay.code, kOk) << replay;
  const auto lines = replay.lines();
  ASSERT_EQ(lines.size(), 3u) << replay;
  EXPECT_TRUE(absl::StartsWith(lines[0], "e0  (")) << replay;
  EXPECT_TRUE(absl::StrContains(lines[0], "stream_offset=0")) << replay;
  // From the offset of e1 on: e1 and e2 only.
  Result resumed =
      Cli({"subscribe", queue, "--queue-type=stream", "--offset=1", "--max=2"});
  EXPECT_EQ(resumed.code, kOk) << resumed;
  ASSERT_EQ(resumed.lines().size(), 2u) << resumed;
  EXPECT_TRUE(absl::StartsWith(resumed.lines()[0], "e1  (")) << resumed;
  EXPECT_TRUE(absl::StrContains(resumed.lines()[1], "stream_offset=2"))
      << resumed;
  auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE((*admin)->DeleteQueue(queue).ok());
}

TEST_F(CliTest, StoppedSubscriberLeavesUnprintedMessagesQueued) {
  const std::string queue = Unique("cli-stop");
  auto sub = StartCli({"--json", "subscribe", queue});
  AwaitSubscribed(*sub);
  ASSERT_EQ(Cli({"publish", "--queue=" + queue, "m1"}).code, kOk);
  ASSERT_TRUE(sub->WaitForLines(2)) << sub->Stderr();
  sub->Signal(SIGINT);
  EXPECT_EQ(sub->Wait(), kOk) << sub->Stderr();
  // Published after the subscriber left: still there for the next one.
  ASSERT_EQ(Cli({"publish", "--queue=" + queue, "m2"}).code, kOk);
  Result next = Cli({"--json", "subscribe", queue, "--max=1"});
  ASSERT_EQ(next.code, kOk) << next;
  ASSERT_EQ(next.lines().size(), 2u) << next;
  EXPECT_EQ(
      ParseJson<v1::SubscribeResponse>(next.lines()[1]).delivery().payload(),
      "m2");
  auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE((*admin)->DeleteQueue(queue).ok());
}

TEST_F(CliTest, TopicSubscriptionReceivesMatchingRoutingKeys) {
  const std::string exchange = Unique("cli-topic");
  auto sub = StartCli({"--json", "subscribe", "--exchange=" + exchange,
                       "--binding-key=orders.*", "--max=1"});
  AwaitSubscribed(*sub);
  // No queue is bound for it: the (mandatory) publish says so.
  ASSERT_EQ(Cli({"publish", exchange, "invoices.new", "not for us"}).code,
            kPrecondition);
  ASSERT_EQ(Cli({"publish", exchange, "orders.new", "order 1"}).code, kOk);
  ASSERT_EQ(sub->Wait(), kOk) << sub->Stderr();
  auto lines = sub->StdoutLines();
  ASSERT_EQ(lines.size(), 2u) << sub->Stdout();
  auto d = ParseJson<v1::SubscribeResponse>(lines[1]).delivery();
  EXPECT_EQ(d.payload(), "order 1");
  EXPECT_EQ(d.exchange(), exchange);
  EXPECT_EQ(d.routing_key(), "orders.new");
}

TEST_F(CliTest, PublishErrorsHaveTheirExitCodes) {
  Result no_exchange =
      Cli({"publish", Unique("cli-no-such-exchange"), "key", "x"});
  EXPECT_EQ(no_exchange.code, kNotFound) << no_exchange;
  EXPECT_TRUE(absl::StartsWith(no_exchange.err, "warren: NOT_FOUND: "))
      << no_exchange;

  // Mandatory by default, like the client wrappers: a message no queue
  // receives is an error...
  Result unroutable =
      Cli({"publish", "--queue=" + Unique("cli-no-queue"), "x"});
  EXPECT_EQ(unroutable.code, kPrecondition) << unroutable;
  EXPECT_TRUE(absl::StartsWith(unroutable.err, "warren: FAILED_PRECONDITION: "))
      << unroutable;
  // ...unless the caller lets the broker drop it.
  Result dropped = Cli({"publish", "--queue=" + Unique("cli-no-queue"), "x",
                        "--mandatory=false"});
  EXPECT_EQ(dropped.code, 0) << dropped;
  EXPECT_TRUE(absl::StartsWith(dropped.out, "published ")) << dropped;
}

TEST_F(CliTest, OtherErrorsExitOne) {
  // The broker reserves amq.* queue names: PERMISSION_DENIED.
  Result r = Cli({"subscribe", "amq." + Unique("cli-reserved")});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(absl::StartsWith(r.err, "warren: PERMISSION_DENIED: ")) << r;
}

TEST_F(CliTest, ARequestNoServerCanGrantExitsTwo) {
  // Beyond the server's max_in_flight_cap (10000): INVALID_ARGUMENT, as no
  // retry would succeed.
  Result r = Cli({"subscribe", Unique("cli-cap"), "--max-in-flight=20000"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(absl::StartsWith(r.err, "warren: INVALID_ARGUMENT: ")) << r;
  EXPECT_TRUE(absl::StrContains(r.err, "start.max_in_flight")) << r;
}

// -------------------------------------------------------------- election

TEST_F(CliTest, ElectLeadsFollowsResignsAndLeaderReports) {
  const std::string election = Unique("cli-election");
  Result nobody = Cli({"leader", election});
  EXPECT_EQ(nobody.code, kNotFound) << nobody;

  auto a = StartCli({"--json", "elect", election, "--id=a", "--value=va"});
  ASSERT_TRUE(a->WaitForLines(1)) << a->Stderr();
  auto elected = ParseJson<v1::ElectResponse>(a->StdoutLines()[0]);
  ASSERT_TRUE(elected.has_elected()) << a->Stdout();
  EXPECT_EQ(elected.elected().leader().candidate_id(), "a");
  EXPECT_EQ(elected.elected().leader().value(), "va");
  const uint64_t token_a = elected.elected().leader().fencing_token();
  EXPECT_GT(token_a, 0u);

  Result leader = Cli({"--json", "leader", election});
  ASSERT_EQ(leader.code, kOk) << leader;
  auto got = ParseJson<v1::GetLeaderResponse>(leader.out);
  EXPECT_EQ(got.leader().candidate_id(), "a");
  EXPECT_EQ(got.leader().fencing_token(), token_a);
  Result human = Cli({"leader", election});
  EXPECT_TRUE(absl::StartsWith(
      human.out, absl::StrCat("a (value=va, fencing_token=", token_a)))
      << human;

  auto b = StartCli({"--json", "elect", election, "--id=b"});
  ASSERT_TRUE(b->WaitForLines(1)) << b->Stderr();
  auto following = ParseJson<v1::ElectResponse>(b->StdoutLines()[0]);
  ASSERT_TRUE(following.has_following()) << b->Stdout();
  EXPECT_EQ(following.following().leader().candidate_id(), "a");

  // SIGTERM: a resigns (and says so), b takes over with a larger token.
  a->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(), kOk) << a->Stderr();
  auto a_lines = a->StdoutLines();
  ASSERT_EQ(a_lines.size(), 2u) << a->Stdout();
  EXPECT_EQ(ParseJson<v1::ElectResponse>(a_lines[1]).lost().reason(),
            v1::LOSS_REASON_RESIGNED);

  ASSERT_TRUE(b->WaitForOutput("{\"elected\":")) << b->Stdout();
  auto b_elected = ParseJson<v1::ElectResponse>(b->StdoutLines().back());
  ASSERT_TRUE(b_elected.has_elected()) << b->Stdout();
  EXPECT_GT(b_elected.elected().leader().fencing_token(), token_a);
  b->Signal(SIGINT);
  EXPECT_EQ(b->Wait(), kOk) << b->Stderr();

  Result after = Cli({"leader", election});
  EXPECT_EQ(after.code, kNotFound) << after;
}

TEST_F(CliTest, LeaderWatchPrintsEveryChange) {
  const std::string election = Unique("cli-observe");
  auto watch = StartCli({"leader", election, "--watch"});
  ASSERT_TRUE(watch->WaitForOutput("no leader\n")) << watch->Stderr();
  auto a = StartCli({"elect", election, "--id=watched-a", "--value=addr"});
  ASSERT_TRUE(watch->WaitForOutput("watched-a (value=addr")) << watch->Stdout();
  ASSERT_TRUE(a->WaitForOutput("elected: watched-a (value=addr"))
      << a->Stdout();
  a->Signal(SIGINT);
  EXPECT_EQ(a->Wait(), kOk);
  // (The server may report the new leader twice: first without its
  // elected time.)
  ASSERT_TRUE(WaitFor(
      [&] {
        auto lines = watch->StdoutLines();
        return lines.size() >= 3 && lines.back() == "no leader";
      },
      absl::Seconds(30)))
      << watch->Stdout();
  watch->Signal(SIGTERM);
  EXPECT_EQ(watch->Wait(), kOk);
}

// ---------------------------------------------------- servers and timeouts

TEST_F(CliTest, ServerComesFromWarrenAddress) {
  RunOptions env;
  env.env = {"WARREN_ADDRESS=" + warrend_->address()};
  EXPECT_EQ(RunWarren({"config", "put", "env/key", "from-env"}, env).code, kOk);
  Result get = RunWarren({"config", "get", "env/key"}, env);
  EXPECT_EQ(get.code, kOk) << get;
  EXPECT_EQ(get.out, "from-env\n");
}

TEST_F(CliTest, StreamingTimeoutStopsWithExitFive) {
  Result watch = Cli({"--timeout=300ms", "config", "watch", "quiet/key"});
  EXPECT_EQ(watch.code, kUnavailable) << watch;
  EXPECT_TRUE(absl::StartsWith(watch.err, "watching: 0 keys")) << watch;
  Result elect = Cli({"elect", Unique("cli-timeout"), "--timeout=500ms"});
  EXPECT_EQ(elect.code, kUnavailable) << elect;
  EXPECT_TRUE(absl::StartsWith(elect.out, "elected: ")) << elect;
  EXPECT_TRUE(absl::StrContains(elect.out, "\nlost: RESIGNED\n")) << elect;
}

// ------------------------------------------------------------------ lock

// `sh -c SCRIPT` under `warren lock`: the command's stdout is warren's.
std::vector<std::string> Sh(const std::string& script) {
  return {"sh", "-c", script};
}

TEST_F(CliTest, LockRunsTheCommandWithTheTokenThenReleases) {
  const std::string name = Unique("cli-lock");
  std::vector<std::string> args = {"lock", name, "--holder=me", "--"};
  for (const std::string& word :
       Sh("echo \"$WARREN_LOCK_NAME $WARREN_LOCK_HOLDER "
          "$WARREN_FENCING_TOKEN\"; exit 3")) {
    args.push_back(word);
  }
  Result run = Cli(args);
  // COMMAND's status is warren's.
  EXPECT_EQ(run.code, 3) << run;
  const std::vector<std::string> words = absl::StrSplit(run.out, ' ');
  ASSERT_EQ(words.size(), 3u) << run;
  EXPECT_EQ(words[0], name);
  EXPECT_EQ(words[1], "me");
  uint64_t token = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(words[2]), &token))
      << run;
  EXPECT_GT(token, 0u);
  EXPECT_TRUE(absl::StrContains(run.err, absl::StrCat("acquired lock ", name,
                                                      " (holder me, "
                                                      "fencing_token=",
                                                      token, ")")))
      << run;

  // Released: nobody holds it, and the next holder gets a larger token.
  Result after = Cli({"lock", "get", name});
  EXPECT_EQ(after.code, kOk) << after;
  EXPECT_EQ(after.out, "no holder\nlimit: 0, waiting: 0\n");
  Result again = Cli({"lock", name, "--no-wait", "--", "sh", "-c",
                      "echo $WARREN_FENCING_TOKEN"});
  EXPECT_EQ(again.code, kOk) << again;
  uint64_t next = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(again.out), &next));
  EXPECT_GT(next, token);

  // A signal ends a command; a command that cannot run is 127.
  Result killed = Cli({"lock", name, "--", "sh", "-c", "kill -9 $$"});
  EXPECT_EQ(killed.code, 128 + 9) << killed;
  Result missing = Cli({"lock", name, "--", "/no/such/command"});
  EXPECT_EQ(missing.code, 127) << missing;
}

TEST_F(CliTest, LockExcludesOthersWhoWaitOrTimeOut) {
  const std::string name = Unique("cli-lock");
  auto holder = StartCli({"lock", name, "--holder=first", "--value=job-1", "--",
                          "sh", "-c", "echo started; exec sleep 60"});
  ASSERT_TRUE(holder->WaitForOutput("started")) << holder->Stderr();

  Result busy = Cli({"lock", name, "--no-wait", "--", "true"});
  EXPECT_EQ(busy.code, kUnavailable) << busy;
  EXPECT_TRUE(absl::StartsWith(busy.err, "warren: DEADLINE_EXCEEDED: "))
      << busy;
  Result timed = Cli({"--timeout=500ms", "lock", name, "--", "true"});
  EXPECT_EQ(timed.code, kUnavailable) << timed;

  auto waiter = StartCli(
      {"lock", name, "--holder=second", "--", "sh", "-c", "echo second ran"});
  ASSERT_TRUE(WaitFor(
      [&] { return absl::StrContains(waiter->Stderr(), "waiting for lock"); },
      absl::Seconds(30)))
      << waiter->Stderr();
  EXPECT_TRUE(absl::StrContains(waiter->Stderr(), "0 ahead, held by first"))
      << waiter->Stderr();
  Result info = Cli({"--json", "lock", "get", name});
  ASSERT_EQ(info.code, kOk) << info;
  auto response = ParseJson<v1::GetLockResponse>(info.out);
  ASSERT_EQ(response.holders_size(), 1) << info;
  EXPECT_EQ(response.holders(0).holder_id(), "first");
  EXPECT_EQ(response.holders(0).value(), "job-1");
  EXPECT_EQ(response.waiting(), 1u);
  EXPECT_EQ(response.limit(), 1u);
  Result human = Cli({"lock", "get", name});
  EXPECT_TRUE(absl::StartsWith(human.out, "holder: first (value=job-1, "))
      << human;
  EXPECT_TRUE(absl::EndsWith(human.out, "\nlimit: 1, waiting: 1\n")) << human;

  // SIGTERM goes on to COMMAND; the lock is released once it has exited,
  // and the waiter runs.
  holder->Signal(SIGTERM);
  EXPECT_EQ(holder->Wait(), 128 + SIGTERM) << holder->Stderr();
  EXPECT_EQ(waiter->Wait(), kOk) << waiter->Stderr();
  EXPECT_EQ(waiter->Stdout(), "second ran\n");
}

TEST_F(CliTest, ASemaphoreRunsUpToItsLimit) {
  const std::string name = Unique("cli-semaphore");
  std::vector<std::unique_ptr<CliProcess>> holders;
  for (int i = 0; i < 2; ++i) {
    holders.push_back(StartCli({"lock", name, "--limit=2", "--", "sh", "-c",
                                "echo started; exec sleep 60"}));
    ASSERT_TRUE(holders.back()->WaitForOutput("started"))
        << holders.back()->Stderr();
  }
  Result third = Cli({"lock", name, "--limit=2", "--no-wait", "--", "true"});
  EXPECT_EQ(third.code, kUnavailable) << third;
  Result other_limit = Cli({"lock", name, "--no-wait", "--", "true"});
  EXPECT_EQ(other_limit.code, kPrecondition) << other_limit;
  EXPECT_TRUE(
      absl::StartsWith(other_limit.err, "warren: FAILED_PRECONDITION: "))
      << other_limit;
  for (auto& holder : holders) holder->Signal(SIGTERM);
  for (auto& holder : holders) EXPECT_EQ(holder->Wait(), 128 + SIGTERM);
}

TEST_F(CliTest, FencedWritesUnderALockAndAfterIt) {
  const std::string name = Unique("cli-lock");
  const std::string queue = Unique("cli-fenced");
  RunOptions env;
  env.env = {"WARREN_ADDRESS=" + warrend_->address()};
  // Under the lock: --fenced takes the lock's name and token from the
  // environment.
  const std::string script = absl::StrCat(
      "echo $WARREN_FENCING_TOKEN && '", CliBinary(),
      "' config put fenced/key under-lock --fenced >&2 && '", CliBinary(),
      "' publish --queue=", queue, " x --mandatory=false --fenced >&2");
  Result run = RunWarren({"lock", name, "--", "sh", "-c", script}, env);
  ASSERT_EQ(run.code, kOk) << run;
  const std::string token(absl::StripAsciiWhitespace(run.out));
  EXPECT_EQ(Cli({"config", "get", "fenced/key"}).out, "under-lock\n");

  // The lock is released: its token no longer fences anything.
  Result late = Cli({"config", "put", "fenced/key", "late",
                     "--fence-lock=" + name, "--fence-token=" + token});
  EXPECT_EQ(late.code, kPrecondition) << late;
  EXPECT_TRUE(
      absl::StartsWith(late.err, "warren: FAILED_PRECONDITION: fence: "))
      << late;
  Result late_delete = Cli({"config", "delete", "fenced/key",
                            "--fence-lock=" + name, "--fence-token=" + token});
  EXPECT_EQ(late_delete.code, kPrecondition) << late_delete;
  Result late_publish =
      Cli({"publish", "--queue=" + queue, "x", "--mandatory=false",
           "--fence-lock=" + name, "--fence-token=" + token});
  EXPECT_EQ(late_publish.code, kPrecondition) << late_publish;
  EXPECT_EQ(Cli({"config", "get", "fenced/key"}).out, "under-lock\n");

  // An election that nobody leads fences nothing either.
  Result no_leader =
      Cli({"config", "put", "fenced/key", "x",
           "--fence-election=" + Unique("cli-nobody"), "--fence-token=1"});
  EXPECT_EQ(no_leader.code, kPrecondition) << no_leader;
}

TEST_F(CliTest, AFencedPublishStopsWithTheLeadership) {
  const std::string election = Unique("cli-fence");
  auto leader = StartCli({"--json", "elect", election});
  ASSERT_TRUE(leader->WaitForLines(1)) << leader->Stderr();
  auto elected = ParseJson<v1::ElectResponse>(leader->StdoutLines()[0]);
  ASSERT_TRUE(elected.has_elected()) << leader->Stdout();
  const std::vector<std::string> publish = {
      "publish",
      "--queue=" + Unique("cli-nobody"),
      "x",
      "--mandatory=false",
      "--fence-election=" + election,
      absl::StrCat("--fence-token=",
                   elected.elected().leader().fencing_token())};
  Result leading = Cli(publish);
  EXPECT_EQ(leading.code, kOk) << leading;
  leader->Signal(SIGTERM);
  ASSERT_EQ(leader->Wait(), kOk) << leader->Stderr();
  Result deposed = Cli(publish);
  EXPECT_EQ(deposed.code, kPrecondition) << deposed;
  EXPECT_TRUE(
      absl::StartsWith(deposed.err, "warren: FAILED_PRECONDITION: fence: "))
      << deposed;
}

// ------------------------------------------------------- txn and hold

TEST_F(CliTest, ConfigTxnAppliesEveryStepOrNone) {
  Result applied = Cli({"config", "txn", "--if-missing=txn/a", "--put=txn/a=1",
                        "--put=txn/b=x=y"});
  ASSERT_EQ(applied.code, kOk) << applied;
  EXPECT_EQ(applied.out, "txn/a: version 0\ntxn/b: version 0\n");
  // The value is everything after the key's '='.
  EXPECT_EQ(Cli({"config", "get", "txn/b"}).out, "x=y\n");

  // The second check fails: exit 4, naming it, nothing changed.
  Result refused =
      Cli({"config", "txn", "--if-exists=txn/a", "--if-version=txn/b=3",
           "--put=txn/a=2", "--delete=txn/b"});
  EXPECT_EQ(refused.code, kPrecondition) << refused;
  EXPECT_TRUE(
      absl::StartsWith(refused.err, "warren: FAILED_PRECONDITION: checks[1]"))
      << refused;
  EXPECT_EQ(Cli({"config", "get", "txn/a"}).out, "1\n");
  EXPECT_EQ(Cli({"config", "get", "txn/b"}).out, "x=y\n");

  // Steps from stdin, with --json.
  Result from_stdin =
      Cli({"--json", "config", "txn", "-"}, Stdin("# bump a, drop b\n"
                                                  "if-version txn/a=0\n"
                                                  "\n"
                                                  "put txn/a=2\n"
                                                  "delete txn/b\n"));
  ASSERT_EQ(from_stdin.code, kOk) << from_stdin;
  auto response = ParseJson<v1::TxnResponse>(from_stdin.out);
  ASSERT_EQ(response.entries_size(), 1) << from_stdin;
  EXPECT_EQ(response.entries(0).key(), "txn/a");
  EXPECT_EQ(response.entries(0).version(), 1);
  EXPECT_EQ(Cli({"config", "get", "txn/b"}).code, kNotFound);

  Result bad_line = Cli({"config", "txn", "-"}, Stdin("frobnicate txn/a\n"));
  EXPECT_EQ(bad_line.code, kUsage) << bad_line;
  EXPECT_TRUE(absl::StrContains(bad_line.err, "stdin line 1")) << bad_line;
}

TEST_F(CliTest, ConfigHoldKeepsTheKeyUntilStopped) {
  const std::string key = Unique("cli-services") + "/instance";
  auto hold = StartCli({"--json", "config", "hold", key, "10.0.0.1:80"});
  ASSERT_TRUE(hold->WaitForLines(1)) << hold->Stderr();
  auto held = ParseJson<v1::HoldKeyResponse>(hold->StdoutLines()[0]);
  ASSERT_TRUE(held.has_held()) << hold->Stdout();
  EXPECT_EQ(held.held().key(), key);
  EXPECT_EQ(held.held().value(), "10.0.0.1:80");
  EXPECT_TRUE(held.held().held());

  EXPECT_EQ(Cli({"config", "get", key, "--consistent"}).out, "10.0.0.1:80\n");
  // Listed, marked held.
  Result list = Cli({"config", "list", key});
  EXPECT_EQ(list.out, key + " = 10.0.0.1:80 (version 0, held)\n") << list;
  // Taken: another holder, or a put of it, is refused.
  Result second = Cli({"config", "hold", key, "other"});
  EXPECT_EQ(second.code, kPrecondition) << second;
  EXPECT_TRUE(absl::StartsWith(second.err, "warren: ALREADY_EXISTS: "))
      << second;

  hold->Signal(SIGTERM);
  EXPECT_EQ(hold->Wait(), kOk) << hold->Stderr();
  EXPECT_EQ(hold->StdoutLines().size(), 1u) << hold->Stdout();
  EXPECT_EQ(Cli({"config", "get", key, "--consistent"}).code, kNotFound);

  // A key someone put cannot be held.
  ASSERT_EQ(Cli({"config", "put", key, "persistent"}).code, kOk);
  Result on_put = Cli({"config", "hold", key, "mine"});
  EXPECT_EQ(on_put.code, kPrecondition) << on_put;
  EXPECT_EQ(Cli({"config", "get", key}).out, "persistent\n");
}

TEST_F(CliTest, ConfigHoldTimeoutReleasesWithExitFive) {
  const std::string key = Unique("cli-services") + "/timed";
  Result timed = Cli({"--timeout=1s", "config", "hold", key, "v"});
  EXPECT_EQ(timed.code, kUnavailable) << timed;
  EXPECT_TRUE(absl::StartsWith(timed.out, "held: " + key +
                                              " = v (version 0, "
                                              "held)\n"))
      << timed;
  EXPECT_EQ(Cli({"config", "get", key, "--consistent"}).code, kNotFound);
}

TEST(CliNoServerTest, EveryCommandExitsFiveWhenNothingListens) {
  const std::string closed = absl::StrCat("127.0.0.1:", FreePort());
  const std::vector<std::vector<std::string>> commands = {
      {"config", "get", "k"},
      {"config", "put", "k", "v"},
      {"config", "list"},
      {"config", "watch", "k"},
      {"publish", "--queue=q", "x"},
      {"subscribe", "q"},
      {"elect", "e"},
      {"leader", "e"},
      {"leader", "e", "--watch"},
      {"lock", "get", "l"},
      {"config", "txn", "--put=k=v"},
  };
  for (auto args : commands) {
    args.insert(args.begin(), "--server=" + closed);
    Result r = RunWarren(args);
    EXPECT_EQ(r.code, kUnavailable) << absl::StrJoin(args, " ") << "\n" << r;
    EXPECT_TRUE(absl::StartsWith(r.err, "warren: UNAVAILABLE: ")) << r;
  }
  // A failed publish names the id to retry with.
  Result publish = RunWarren({"--server=" + closed, "publish", "--queue=q", "x",
                              "--message-id=retry-me"});
  EXPECT_TRUE(absl::StrContains(publish.err, "--message-id=retry-me"))
      << publish;
}

// A server of its own, frozen: the lock's lease runs out, COMMAND is sent
// SIGTERM and warren lock exits 6.
TEST(CliLockLeaseTest, ALostLockTerminatesTheCommandWithExitSix) {
  auto warrend = WarrendProcess::Start({"--log_level=warn"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string server = "--server=" + (*warrend)->address();
  auto lock = CliProcess::Start({server, "lock", Unique("lease"),
                                 "--heartbeat-interval=200ms", "--", "sh", "-c",
                                 "echo started; exec sleep 60"});
  ASSERT_TRUE(lock->WaitForOutput("started")) << lock->Stderr();
  (*warrend)->Signal(SIGSTOP);
  const absl::Time stopped = absl::Now();
  const int code = lock->Wait(absl::Seconds(20));
  const absl::Duration took = absl::Now() - stopped;
  (*warrend)->Signal(SIGCONT);
  EXPECT_EQ(code, 6) << lock->Stderr();
  EXPECT_LT(took, absl::Seconds(5));
  EXPECT_TRUE(absl::StrContains(lock->Stderr(),
                                "lease expired): sending "
                                "SIGTERM to sh"))
      << lock->Stderr();
  EXPECT_TRUE(absl::StrContains(lock->Stderr(), "warren: lost lock "))
      << lock->Stderr();
}

// A server of its own: the tests stop and end it.
TEST(CliElectLeaseTest, LeaderStepsDownWhenHeartbeatsStopOrTheStreamBreaks) {
  auto warrend = WarrendProcess::Start({"--log_level=warn"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string server = "--server=" + (*warrend)->address();

  // A frozen server: no heartbeat comes, so the lease (2 x 200ms) runs out.
  auto frozen = CliProcess::Start({server, "--json", "elect", Unique("lease"),
                                   "--heartbeat-interval=200ms"});
  ASSERT_TRUE(frozen->WaitForOutput("elected")) << frozen->Stderr();
  (*warrend)->Signal(SIGSTOP);
  const absl::Time stopped = absl::Now();
  const int frozen_code = frozen->Wait(absl::Seconds(20));
  const absl::Duration took = absl::Now() - stopped;
  (*warrend)->Signal(SIGCONT);
  EXPECT_EQ(frozen_code, kUnavailable) << frozen->Stderr();
  EXPECT_LT(took, absl::Seconds(5));
  auto lines = frozen->StdoutLines();
  ASSERT_EQ(lines.size(), 2u) << frozen->Stdout();
  auto lost = ParseJson<google::protobuf::Struct>(lines[1]);
  EXPECT_EQ(lost.fields()
                .at("lost")
                .struct_value()
                .fields()
                .at("reason")
                .string_value(),
            "CLIENT_LEASE_EXPIRED");
  EXPECT_TRUE(absl::StrContains(frozen->Stderr(), "leadership given up"))
      << frozen->Stderr();

  // A server that goes away: the stream breaks, and that is a loss at once.
  auto broken = CliProcess::Start({server, "elect", Unique("broken")});
  ASSERT_TRUE(broken->WaitForOutput("elected")) << broken->Stderr();
  EXPECT_EQ((*warrend)->Terminate(), 0);
  EXPECT_EQ(broken->Wait(), kUnavailable) << broken->Stderr();
  EXPECT_TRUE(absl::StrContains(broken->Stdout(), "\nlost: STREAM_BROKEN\n"))
      << broken->Stdout();
}

}  // namespace
}  // namespace warren::testing
