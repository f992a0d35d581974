// What every attack of the security suite needs: a warrend with tokens and
// a policy of the test's choosing, and a channel per principal (each call
// carries the principal's bearer token, as a client sets it once).
#pragma once

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "warren/client/channel.h"

namespace warren::testing::security {

struct Principal {
  std::string name;
  std::string token;
};

// Replaced by a rename, as deployments do (a reader never sees half a file).
inline void ReplaceFile(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  std::ofstream(temp) << text;
  ASSERT_EQ(std::rename(temp.c_str(), path.c_str()), 0) << path;
}

// A tokens file and a policy file in a directory of their own.
class AuthFiles {
 public:
  // `policy_yaml` is the policy file's whole text ("principals: ...").
  AuthFiles(const std::vector<Principal>& principals,
            const std::string& policy_yaml)
      : dir_(MakeTempDir("warren-security")) {
    WriteTokens(principals);
    WritePolicy(policy_yaml);
  }

  void WriteTokens(const std::vector<Principal>& principals) {
    std::string text = "tokens:\n";
    for (const Principal& p : principals) {
      absl::StrAppend(&text, "  - {principal: ", p.name, ", token: ", p.token,
                      "}\n");
    }
    ReplaceFile(tokens_file(), text);
  }
  void WritePolicy(const std::string& policy_yaml) {
    ReplaceFile(policy_file(), policy_yaml);
  }

  std::string tokens_file() const { return dir_ + "/tokens.yaml"; }
  std::string policy_file() const { return dir_ + "/policy.yaml"; }

  // warrend's flags for these files, re-read every `reload_interval`.
  std::vector<std::string> Flags(
      const std::string& reload_interval = "100ms") const {
    return {"--auth_tokens_file=" + tokens_file(),
            "--auth_policy_file=" + policy_file(),
            "--auth_reload_interval=" + reload_interval};
  }

 private:
  std::string dir_;
};

// A channel of its own (not shared with other principals' calls) whose
// every call carries `token`.
inline std::shared_ptr<grpc::Channel> ChannelAs(const std::string& address,
                                                const std::string& token) {
  return ::warren::client::MakeChannel(address,
                                       ::warren::client::ChannelOptions{token});
}

}  // namespace warren::testing::security
