// What `warren` prints: one JSON object per line with --json (protobuf's
// canonical JSON mapping: lowerCamelCase names, bytes as base64, 64-bit
// integers as strings, enums by name), readable lines otherwise. Every line
// is flushed at once so that a pipe or a file sees each event as it happens.
// Used from one thread only.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "warren/v1/config.pb.h"
#include "warren/v1/election.pb.h"

namespace warren::cli {

class Output {
 public:
  explicit Output(bool json) : json_(json) {}
  bool json() const { return json_; }

  // One line of text on stdout (the newline is added).
  void Line(absl::string_view text) const;
  // Raw bytes on stdout, exactly as given.
  void Raw(absl::string_view bytes) const;
  // `message` as one line of JSON on stdout.
  void Json(const google::protobuf::Message& message) const;

 private:
  bool json_;
};

// A JSON object built field by field, for output that is no proto message.
class JsonObject {
 public:
  JsonObject& Set(const std::string& name, const std::string& value);
  JsonObject& Set(const std::string& name, bool value);
  JsonObject& Set(const std::string& name, const JsonObject& value);
  const google::protobuf::Struct& proto() const { return struct_; }

 private:
  google::protobuf::Struct struct_;
};

// `bytes` as it is when it is printable text, else C-escaped in quotes.
std::string Printable(absl::string_view bytes);
// RFC 3339 in UTC, or "-" when unset.
std::string FormatTime(const google::protobuf::Timestamp& time);
// `candidate-id (value=..., fencing_token=..., elected ...)`.
std::string FormatLeader(const v1::Leader& leader);
// `key = value (version N)`, `(version N, held)` for a held key.
std::string FormatEntry(const v1::ConfigEntry& entry);
// A LossReason without its prefix: RESIGNED, CONNECTION_SUSPENDED, ...
std::string LossName(v1::LossReason reason);
// A "lost" that the client decides by itself (no such LossReason exists on
// the wire: CLIENT_LEASE_EXPIRED, STREAM_BROKEN), printed in the shape of
// the server's.
void PrintClientLost(const Output& out, const std::string& reason);

}  // namespace warren::cli
