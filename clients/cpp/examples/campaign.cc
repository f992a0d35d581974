// campaign: campaigns in an election and prints the leader and every event,
// until Ctrl-C / SIGTERM (then it resigns) or --duration.
//
//   WARREN_ADDRESS=127.0.0.1:50051 campaign --election=example --value=me
//
// Run it in two terminals: one leads, the other follows; stop the leader and
// the other one is elected with a higher fencing token.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "example_util.h"
#include "warren/client/channel.h"
#include "warren/client/elector.h"

ABSL_FLAG(std::string, election, "example", "The election's name.");
ABSL_FLAG(std::string, candidate, "",
          "This candidate's id (default: campaign-<pid>).");
ABSL_FLAG(std::string, value, "", "The value published while leading.");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "How long to campaign (0: until Ctrl-C).");
ABSL_FLAG(absl::Duration, heartbeat, absl::Seconds(1),
          "The lease heartbeat interval.");

namespace client = warren::client;

int main(int argc, char** argv) {
  warren::examples::Setup();
  absl::ParseCommandLine(argc, argv);
  std::string candidate = absl::GetFlag(FLAGS_candidate);
  if (candidate.empty()) candidate = absl::StrCat("campaign-", getpid());
  const std::string address = client::AddressFromEnv();

  client::ElectorOptions options;
  options.election = absl::GetFlag(FLAGS_election);
  options.candidate_id = candidate;
  options.value = absl::GetFlag(FLAGS_value);
  options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat);
  options.on_elected = [](const warren::v1::Leader& self) {
    std::printf("elected: %s leads %s (fencing token %llu)\n",
                self.candidate_id().c_str(), self.election().c_str(),
                static_cast<unsigned long long>(self.fencing_token()));
  };
  options.on_following = [](const warren::v1::Leader* leader) {
    if (leader == nullptr) {
      std::printf("following: nobody leads right now\n");
    } else {
      std::printf("following: %s leads (value \"%s\", fencing token %llu)\n",
                  leader->candidate_id().c_str(), leader->value().c_str(),
                  static_cast<unsigned long long>(leader->fencing_token()));
    }
  };
  options.on_lost = [](client::LossReason reason, const absl::Status& why) {
    std::printf(
        "lost: %s%s\n", client::LossReasonName(reason),
        why.ok() ? "" : absl::StrCat(" (", why.ToString(), ")").c_str());
  };
  options.on_stream_error = [](const absl::Status& status) {
    std::printf("stream ended: %s; campaigning again\n",
                status.ToString().c_str());
  };

  std::printf("campaigning in %s as %s via %s\n", options.election.c_str(),
              candidate.c_str(), address.c_str());
  auto elector = client::Elector::Start(
      client::MakeChannel(address,
                          client::ChannelOptions{client::TokenFromEnv()}),
      options);
  if (!elector.ok()) {
    std::fprintf(stderr, "campaign failed: %s\n",
                 elector.status().ToString().c_str());
    return 1;
  }
  warren::examples::WaitForStop(absl::GetFlag(FLAGS_duration));
  std::printf("resigning\n");
  (*elector)->Close();
  std::printf("done\n");
  return 0;
}
