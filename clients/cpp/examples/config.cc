// config: reads a config value, prints it, and prints it again each time it
// changes, until Ctrl-C / SIGTERM, --duration or --changes.
//
//   WARREN_ADDRESS=127.0.0.1:50051 config --key=example/greeting
//
// Change it from elsewhere (e.g. `warren config put example/greeting hi`,
// or any client's PutConfig) and watch it change here.
#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "example_util.h"
#include "warren/client/channel.h"
#include "warren/client/config_watcher.h"

ABSL_FLAG(std::string, key, "example/greeting", "The key to watch.");
ABSL_FLAG(bool, prefix, false, "Watch every key under --key.");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "How long to watch (0: until Ctrl-C).");
ABSL_FLAG(int, changes, 0, "Stop after this many changes (0: no limit).");

namespace client = warren::client;

int main(int argc, char** argv) {
  warren::examples::Setup();
  absl::ParseCommandLine(argc, argv);
  std::atomic<int> changes{0};

  client::ConfigWatcherOptions options;
  options.key = absl::GetFlag(FLAGS_key);
  options.prefix = absl::GetFlag(FLAGS_prefix);
  options.on_change = [&](const client::ConfigChange& change) {
    if (change.type == client::ConfigChange::Type::kPut) {
      std::printf("changed: %s = %s (version %lld)\n", change.key.c_str(),
                  change.value.c_str(), static_cast<long long>(change.version));
    } else {
      std::printf("deleted: %s\n", change.key.c_str());
    }
    ++changes;
  };
  options.on_stream_error = [](const absl::Status& status) {
    std::printf("watch ended: %s; watching again\n", status.ToString().c_str());
  };

  auto watcher = client::ConfigWatcher::Start(
      client::MakeChannel(client::AddressFromEnv(),
                          client::ChannelOptions{client::TokenFromEnv()}),
      options);
  if (!watcher.ok()) {
    std::fprintf(stderr, "watch failed: %s\n",
                 watcher.status().ToString().c_str());
    return 1;
  }
  const auto snapshot = (*watcher)->Snapshot();
  if (snapshot.empty())
    std::printf("value: %s is not set\n", options.key.c_str());
  for (const auto& [key, entry] : snapshot) {
    std::printf("value: %s = %s (version %lld)\n", key.c_str(),
                entry.value().c_str(), static_cast<long long>(entry.version()));
  }
  const int limit = absl::GetFlag(FLAGS_changes);
  warren::examples::WaitForStop(absl::GetFlag(FLAGS_duration),
                                [&] { return limit > 0 && changes >= limit; });
  (*watcher)->Stop();
  std::printf("done\n");
  return 0;
}
