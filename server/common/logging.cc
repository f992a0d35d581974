#include "server/common/logging.h"

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpc/support/log.h"
#include "server/common/log_rate_limit.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace warren {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// The length of the well-formed UTF-8 sequence of two to four bytes at the
// start of `s`, or 0 when there is none (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
size_t Utf8SequenceLength(absl::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto continuation = [&](size_t i) {
    return i < s.size() && (byte(i) & 0xc0) == 0x80;
  };
  const unsigned char lead = byte(0);
  if (lead >= 0xc2 && lead <= 0xdf) return continuation(1) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (lead == 0xe0 && byte(1) < 0xa0) return 0;   // overlong
    if (lead == 0xed && byte(1) >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (lead == 0xf0 && byte(1) < 0x90) return 0;   // overlong
    if (lead == 0xf4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// Characters that are well-formed but still steer what a reader sees: the
// C1 controls (U+0080..U+009F, some terminals act on them) and the
// bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069),
// which can make a line display in another order than it was written.
bool IsDeceptive(absl::string_view sequence) {
  const auto byte = [&](size_t i) {
    return static_cast<unsigned char>(sequence[i]);
  };
  if (sequence.size() == 2) return byte(0) == 0xc2 && byte(1) <= 0x9f;
  if (sequence.size() == 3 && byte(0) == 0xe2) {
    if (byte(1) == 0x80) return byte(2) >= 0xaa && byte(2) <= 0xae;
    if (byte(1) == 0x81) return byte(2) >= 0xa6 && byte(2) <= 0xa9;
  }
  return false;
}

// How many bytes of `s`, at most `max_bytes`, end on a character boundary.
size_t CutPoint(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s.size();
  size_t cut = max_bytes;
  // Step back over continuation bytes so that no character is halved.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80 &&
         max_bytes - cut < 3) {
    --cut;
  }
  return cut;
}

void AppendLengthNote(size_t length, std::string* out) {
  absl::StrAppend(out, "... (", length, " bytes)");
}

// Writes the log message as the inside of a JSON string, cut at
// kMaxLogMessageBytes.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const absl::string_view payload(msg.payload.data(), msg.payload.size());
    const size_t end = CutPoint(payload, kMaxLogMessageBytes);
    for (size_t i = 0; i < end;) {
      const char c = payload[i];
      const auto byte = static_cast<unsigned char>(c);
      if (byte >= 0x80) {
        const size_t length = Utf8SequenceLength(payload.substr(i));
        if (length > 0) {
          dest.append(payload.data() + i, payload.data() + i + length);
          i += length;
          continue;
        }
        // Not UTF-8: JSON text must be, so the byte becomes its code point.
        const char escaped[] = {
            '\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xf]};
        dest.append(escaped, escaped + sizeof(escaped));
        ++i;
        continue;
      }
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        default:
          if (byte < 0x20 || byte == 0x7f) {
            const char escaped[] = {
                '\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xf]};
            dest.append(escaped, escaped + sizeof(escaped));
          } else {
            dest.push_back(c);
          }
      }
      ++i;
    }
    if (end < payload.size()) {
      std::string note;
      AppendLengthNote(payload.size(), &note);
      dest.append(note.data(), note.data() + note.size());
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

// Writes the log message for the text log: on one line, escaped and cut
// (AppendEscapedForLog).
class TextEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string text;
    AppendEscapedForLog(
        absl::string_view(msg.payload.data(), msg.payload.size()), &text);
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextEscapedMessage>();
  }
};

}  // namespace

std::string Abbreviated(absl::string_view value, size_t max_bytes) {
  if (value.size() <= max_bytes) return std::string(value);
  std::string out(value.substr(0, CutPoint(value, max_bytes)));
  AppendLengthNote(value.size(), &out);
  return out;
}

void AppendEscapedForLog(absl::string_view message, std::string* out,
                         size_t max_bytes) {
  const size_t end = CutPoint(message, max_bytes);
  const auto escape = [out](unsigned char byte) {
    const char escaped[] = {'\\', 'x', kHex[byte >> 4], kHex[byte & 0xf]};
    out->append(escaped, sizeof(escaped));
  };
  for (size_t i = 0; i < end;) {
    const char c = message[i];
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80) {
      const size_t length = Utf8SequenceLength(message.substr(i));
      const absl::string_view sequence = message.substr(i, length);
      if (length > 0 && !IsDeceptive(sequence)) {
        out->append(sequence.data(), sequence.size());
        i += length;
      } else {
        for (size_t k = 0; k < std::max<size_t>(length, 1); ++k) {
          escape(static_cast<unsigned char>(message[i + k]));
        }
        i += std::max<size_t>(length, 1);
      }
      continue;
    }
    switch (c) {
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\\':
        out->append("\\\\");
        break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          escape(byte);
        } else {
          out->push_back(c);
        }
    }
    ++i;
  }
  if (end < message.size()) AppendLengthNote(message.size(), out);
}

namespace {

void ForwardGrpcLog(gpr_log_func_args* args) {
  // Never freed: gRPC may log from its threads until the process exits.
  static auto* const limit =
      new LogRateLimit(kGrpcLogLines, kGrpcLogBytes, kGrpcLogWindow);
  absl::string_view file = args->file != nullptr ? args->file : "?";
  if (const size_t slash = file.rfind('/'); slash != file.npos) {
    file.remove_prefix(slash + 1);
  }
  const std::string line =
      absl::StrCat("grpc: ",
                   Abbreviated(args->message != nullptr ? args->message : "",
                               2 * kMaxEchoBytes),
                   " (", file, ":", args->line, ")");
  int64_t suppressed = 0;
  if (!limit->Admit(line.size(), &suppressed)) return;
  const std::string note =
      suppressed == 0
          ? ""
          : absl::StrCat(" (", suppressed, " gRPC lines held back before it)");
  switch (args->severity) {
    case GPR_LOG_SEVERITY_ERROR:
      WARREN_LOG_ERROR("{}{}", line, note);
      break;
    case GPR_LOG_SEVERITY_INFO:
      WARREN_LOG_INFO("{}{}", line, note);
      break;
    default:
      WARREN_LOG_DEBUG("{}{}", line, note);
  }
}

}  // namespace

void RouteGrpcLogging() { gpr_set_log_function(ForwardGrpcLog); }

absl::Status InitLogging(const std::string& level, bool json) {
  spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  // from_str answers "off" for anything it does not know.
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        "log_level must be one of trace, debug, info, warn, error, off; got '" +
        level + "'");
  }
  auto logger = std::make_shared<spdlog::logger>(
      "warren", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(
        spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","thread":%t,"msg":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(
        spdlog::pattern_time_type::utc);
    formatter->add_flag<TextEscapedMessage>('*').set_pattern(
        "%Y-%m-%dT%H:%M:%S.%fZ %L %t] %*");
    logger->set_formatter(std::move(formatter));
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace warren
