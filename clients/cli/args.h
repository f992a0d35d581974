// A small command-line parser for the `warren` subcommands. absl's flags are
// process-global and cannot give each subcommand its own flag set, so each
// command declares the flags it accepts and Args::Parse checks a command
// line against them. Accepted forms: `--name=value`, `--name value` (for
// flags that take a value), `--name` and `--name=true|false` (booleans),
// `--` ends the flags; a lone `-` is a positional argument (stdin).
//
// Every error is a usage error (see UsageError) so that the caller exits 2.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace warren::cli {

// A usage error: the command line is wrong. Carries a payload that tells it
// apart from an INVALID_ARGUMENT answered by the server, so that only local
// mistakes are followed by a hint to read the help.
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

struct FlagSpec {
  enum class Kind { kBool, kValue, kRepeated };
  // Implicit, so that a command lists its flags as {{"max"}, {"json",
  // Kind::kBool}, ...}.
  FlagSpec(std::string name, Kind kind = Kind::kValue)  // NOLINT
      : name(std::move(name)), kind(kind) {}

  std::string name;  // without the leading dashes
  Kind kind;
};

class Args {
 public:
  // Parses `argv` (the words after the command's name). Unknown flags, a
  // missing value, or a repeated single-valued flag are usage errors.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::vector<FlagSpec>& flags);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(absl::string_view name) const;
  // The value of a flag (the last one for repeated flags).
  std::optional<std::string> Get(absl::string_view name) const;
  std::vector<std::string> GetAll(absl::string_view name) const;
  // The values of the flags named in `names`, in command-line order, each
  // with its flag's name (for flags whose order matters across names).
  std::vector<std::pair<std::string, std::string>> InOrder(
      const std::vector<std::string>& names) const;
  // How many positional arguments came before `--` (nullopt without one):
  // the rest are another command's arguments.
  std::optional<size_t> positional_before_dashes() const {
    return positional_before_dashes_;
  }
  // These arguments without what follows `--` (another command's), for
  // the positional checks of the command's own.
  Args BeforeDashes() const;
  // A boolean flag: present (or `=true`) means true.
  absl::StatusOr<bool> GetBool(absl::string_view name) const;
  absl::StatusOr<std::optional<int64_t>> GetInt(absl::string_view name) const;
  // Durations as absl::ParseDuration takes them: `500ms`, `2s`, `1m30s`.
  absl::StatusOr<std::optional<absl::Duration>> GetDuration(
      absl::string_view name) const;

  // Checks the number of positional arguments.
  absl::Status ExpectPositional(size_t min, size_t max) const;

 private:
  std::vector<std::string> positional_;
  std::optional<size_t> positional_before_dashes_;
  std::vector<std::pair<std::string, std::string>> in_order_;
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
};

}  // namespace warren::cli
