#include "clients/cli/output.h"

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace warren::cli {

void Output::Line(absl::string_view text) const {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void Output::Raw(absl::string_view bytes) const {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  std::fflush(stdout);
}

void Output::Json(const google::protobuf::Message& message) const {
  google::protobuf::util::JsonPrintOptions options;
  // Scripts should find every field, even at its zero value (version 0).
  options.always_print_primitive_fields = true;
  std::string text;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    // Cannot happen for our messages; say so rather than print nothing.
    text = absl::StrCat("{\"error\":\"cannot print as JSON: ",
                        absl::CEscape(status.ToString()), "\"}");
  }
  Line(text);
}

JsonObject& JsonObject::Set(const std::string& name, const std::string& value) {
  (*struct_.mutable_fields())[name].set_string_value(value);
  return *this;
}

JsonObject& JsonObject::Set(const std::string& name, bool value) {
  (*struct_.mutable_fields())[name].set_bool_value(value);
  return *this;
}

JsonObject& JsonObject::Set(const std::string& name, const JsonObject& value) {
  *(*struct_.mutable_fields())[name].mutable_struct_value() = value.struct_;
  return *this;
}

std::string Printable(absl::string_view bytes) {
  if (bytes.empty()) return "\"\"";
  for (unsigned char c : bytes) {
    // Control characters (newlines included) would break the one-line
    // layout; bytes >= 0x80 are let through as (probably) UTF-8.
    if (c < 0x20 || c == 0x7f)
      return absl::StrCat("\"", absl::CEscape(bytes), "\"");
  }
  return std::string(bytes);
}

std::string FormatTime(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  const absl::Time t =
      absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string FormatLeader(const v1::Leader& leader) {
  return absl::StrCat(leader.candidate_id(),
                      " (value=", Printable(leader.value()),
                      ", fencing_token=", leader.fencing_token(), ", elected ",
                      FormatTime(leader.elected_time()), ")");
}

std::string FormatEntry(const v1::ConfigEntry& entry) {
  return absl::StrCat(entry.key(), " = ", Printable(entry.value()),
                      " (version ", entry.version(),
                      entry.held() ? ", held)" : ")");
}

std::string LossName(v1::LossReason reason) {
  return std::string(
      absl::StripPrefix(v1::LossReason_Name(reason), "LOSS_REASON_"));
}

void PrintClientLost(const Output& out, const std::string& reason) {
  if (out.json()) {
    out.Json(
        JsonObject().Set("lost", JsonObject().Set("reason", reason)).proto());
  } else {
    out.Line(absl::StrCat("lost: ", reason));
  }
}

}  // namespace warren::cli
