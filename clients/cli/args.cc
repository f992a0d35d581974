#include "clients/cli/args.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace warren::cli {
namespace {

constexpr absl::string_view kUsagePayloadUrl = "warren.cli/usage";

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags,
                         absl::string_view name) {
  auto it = std::find_if(flags.begin(), flags.end(),
                         [&](const FlagSpec& f) { return f.name == name; });
  return it == flags.end() ? nullptr : &*it;
}

}  // namespace

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayloadUrl, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayloadUrl).has_value();
}

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                                 const std::vector<FlagSpec>& flags) {
  Args args;
  bool flags_ended = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (flags_ended || word == "-" || !absl::StartsWith(word, "-")) {
      args.positional_.push_back(word);
      continue;
    }
    if (word == "--") {
      flags_ended = true;
      args.positional_before_dashes_ = args.positional_.size();
      continue;
    }
    if (word == "-h") {
      args.values_["help"].push_back("true");
      continue;
    }
    if (!absl::StartsWith(word, "--")) {
      return UsageError(absl::StrCat("unknown option ", word));
    }
    absl::string_view body = absl::string_view(word).substr(2);
    std::optional<std::string> value;
    if (const size_t eq = body.find('='); eq != absl::string_view::npos) {
      value = std::string(body.substr(eq + 1));
      body = body.substr(0, eq);
    }
    const FlagSpec* spec = FindFlag(flags, body);
    if (spec == nullptr) {
      return UsageError(absl::StrCat("unknown option --", body));
    }
    if (spec->kind == FlagSpec::Kind::kBool) {
      args.values_[spec->name].push_back(value.value_or("true"));
      args.in_order_.emplace_back(spec->name, value.value_or("true"));
      continue;
    }
    if (!value.has_value()) {
      if (i + 1 >= argv.size()) {
        return UsageError(absl::StrCat("option --", body, " needs a value"));
      }
      value = argv[++i];
    }
    auto& values = args.values_[spec->name];
    if (spec->kind == FlagSpec::Kind::kValue && !values.empty()) {
      return UsageError(absl::StrCat("option --", body, " given twice"));
    }
    args.in_order_.emplace_back(spec->name, *value);
    values.push_back(*std::move(value));
  }
  return args;
}

bool Args::Has(absl::string_view name) const {
  return values_.find(name) != values_.end();
}

std::optional<std::string> Args::Get(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::pair<std::string, std::string>> Args::InOrder(
    const std::vector<std::string>& names) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : in_order_) {
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      out.emplace_back(name, value);
    }
  }
  return out;
}

std::vector<std::string> Args::GetAll(absl::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<bool> Args::GetBool(absl::string_view name) const {
  std::optional<std::string> value = Get(name);
  if (!value.has_value()) return false;
  const std::string lower = absl::AsciiStrToLower(*value);
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return UsageError(
      absl::StrCat("option --", name, " takes true or false, not ", *value));
}

absl::StatusOr<std::optional<int64_t>> Args::GetInt(
    absl::string_view name) const {
  std::optional<std::string> value = Get(name);
  if (!value.has_value()) return std::optional<int64_t>();
  int64_t number = 0;
  if (!absl::SimpleAtoi(*value, &number)) {
    return UsageError(
        absl::StrCat("option --", name, " takes an integer, not ", *value));
  }
  return std::optional<int64_t>(number);
}

absl::StatusOr<std::optional<absl::Duration>> Args::GetDuration(
    absl::string_view name) const {
  std::optional<std::string> value = Get(name);
  if (!value.has_value()) return std::optional<absl::Duration>();
  absl::Duration duration;
  if (!absl::ParseDuration(*value, &duration) ||
      duration < absl::ZeroDuration()) {
    return UsageError(absl::StrCat("option --", name,
                                   " takes a duration such as 500ms, 10s or "
                                   "1m, not ",
                                   *value));
  }
  return std::optional<absl::Duration>(duration);
}

Args Args::BeforeDashes() const {
  Args own = *this;
  if (positional_before_dashes_.has_value()) {
    own.positional_.resize(*positional_before_dashes_);
    own.positional_before_dashes_.reset();
  }
  return own;
}

absl::Status Args::ExpectPositional(size_t min, size_t max) const {
  if (positional_.size() < min) {
    return UsageError("missing arguments");
  }
  if (positional_.size() > max) {
    return UsageError(absl::StrCat(
        "unexpected arguments: ",
        absl::StrJoin(positional_.begin() + max, positional_.end(), " ")));
  }
  return absl::OkStatus();
}

}  // namespace warren::cli
