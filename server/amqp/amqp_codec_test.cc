#include "server/amqp/amqp_codec.h"

#include <amqp.h>
#include <amqp_framing.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warren::amqp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

TEST(ParseBrokerUrlTest, ParsesEveryPart) {
  auto a = ParseBrokerUrl("amqps://user:secret@broker.example:5671/prod");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "broker.example");
  EXPECT_EQ(a->port, 5671);
  EXPECT_EQ(a->user, "user");
  EXPECT_EQ(a->password, "secret");
  EXPECT_EQ(a->vhost, "prod");
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->redacted, "amqps://user:****@broker.example:5671/prod");

  auto defaults = ParseBrokerUrl("amqp://localhost");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->port, 5672);
  EXPECT_EQ(defaults->user, "guest");
  EXPECT_EQ(defaults->vhost, "/");
  EXPECT_FALSE(defaults->tls);
}

TEST(ParseBrokerUrlTest, RefusesMalformedUrlsWithoutEchoingThePassword) {
  auto bad = ParseBrokerUrl("http://u:hunter2@host/");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("amqp_urls"));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("hunter2")));
}

TEST(ParseBrokerUrlTest, AmqpsDefaultsToTheTlsPort) {
  auto a = ParseBrokerUrl("amqps://broker");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port, 5671);
  EXPECT_TRUE(a->tls);
}

TEST(ParseBrokerUrlTest, TheEmptyAndTheEncodedRootVhostAreTheDefaultVhost) {
  for (const char* url : {"amqp://h", "amqp://h/", "amqp://h/%2f"}) {
    auto a = ParseBrokerUrl(url);
    ASSERT_TRUE(a.ok()) << url << ": " << a.status();
    EXPECT_EQ(a->vhost, "/") << url;
  }
}

TEST(ParseBrokerUrlTest, DecodesPercentEncodedCredentials) {
  auto a = ParseBrokerUrl("amqp://us%3Aer:p%40ss@h/");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->user, "us:er");
  EXPECT_EQ(a->password, "p@ss");
  EXPECT_THAT(a->redacted, Not(HasSubstr("p%40ss")));
}

TEST(ParseBrokerUrlTest, TakesBracketedIpv6Hosts) {
  auto a = ParseBrokerUrl("amqp://[::1]:5673/v");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 5673);
}

TEST(ParseBrokerUrlTest, AUserWithoutPasswordKeepsTheDefaultPassword) {
  auto a = ParseBrokerUrl("amqp://alice@h");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->user, "alice");
  EXPECT_EQ(a->password, "guest");
  EXPECT_EQ(a->redacted, "amqp://alice@h");
}

TEST(ParseBrokerUrlTest, RefusesBadPortsPathsAndSchemes) {
  for (const char* url :
       {"amqp://h:abc/", "amqp://h:99999/", "amqp://h/a/b", "AMQP://h", ""}) {
    auto a = ParseBrokerUrl(url);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << url;
  }
}

TEST(ParseBrokerUrlTest, AnUnescapedAtInThePasswordLeaksNoPartOfIt) {
  auto a = ParseBrokerUrl("amqp://u:sec@ret@h/");
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("amqp://u:****@h/"));
  EXPECT_THAT(a.status().message(), Not(HasSubstr("sec")));
  EXPECT_THAT(a.status().message(), Not(HasSubstr("ret")));
}

TEST(FromReplyCodeTest, MapsTheBrokersReplyCodes) {
  EXPECT_EQ(FromReplyCode(404, "NOT_FOUND").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(FromReplyCode(403, "ACCESS_REFUSED").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(FromReplyCode(530, "NOT_ALLOWED").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(FromReplyCode(405, "RESOURCE_LOCKED").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FromReplyCode(406, "PRECONDITION_FAILED").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FromReplyCode(311, "CONTENT_TOO_LARGE").code(),
            absl::StatusCode::kInvalidArgument);
  for (int other : {320, 501, 541, 0}) {
    EXPECT_EQ(FromReplyCode(other, "x").code(), absl::StatusCode::kUnavailable)
        << other;
  }
  EXPECT_EQ(FromReplyCode(404, "NOT_FOUND - no queue 'q'").message(),
            "RabbitMQ: NOT_FOUND - no queue 'q'");
}

amqp_rpc_reply_t ServerException(amqp_method_number_t id, void* decoded) {
  amqp_rpc_reply_t reply{};
  reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
  reply.reply.id = id;
  reply.reply.decoded = decoded;
  return reply;
}

TEST(ClassifyReplyTest, ANormalReplyIsOk) {
  amqp_rpc_reply_t reply{};
  reply.reply_type = AMQP_RESPONSE_NORMAL;
  ReplyOutcome outcome = ClassifyReply(reply, "queue.declare");
  EXPECT_EQ(outcome.kind, ReplyOutcome::Kind::kOk);
  EXPECT_TRUE(outcome.status.ok());
}

TEST(ClassifyReplyTest, AChannelCloseEndsTheChannelWithItsReplyCode) {
  const std::string text = "NOT_FOUND - no queue 'q' in vhost '/'";
  amqp_channel_close_t close{};
  close.reply_code = 404;
  close.reply_text = Bytes(text);
  ReplyOutcome outcome = ClassifyReply(
      ServerException(AMQP_CHANNEL_CLOSE_METHOD, &close), "queue.declare");
  EXPECT_EQ(outcome.kind, ReplyOutcome::Kind::kChannelClosed);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(outcome.status.message(), HasSubstr(text));
}

TEST(ClassifyReplyTest, AConnectionCloseEndsTheConnection) {
  const std::string text = "CONNECTION_FORCED - shutdown";
  amqp_connection_close_t close{};
  close.reply_code = 320;
  close.reply_text = Bytes(text);
  ReplyOutcome outcome = ClassifyReply(
      ServerException(AMQP_CONNECTION_CLOSE_METHOD, &close), "basic.qos");
  EXPECT_EQ(outcome.kind, ReplyOutcome::Kind::kConnectionClosed);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(outcome.status.message(), HasSubstr(text));
}

TEST(ClassifyReplyTest, AnUnexpectedMethodFailsTheConnectionNamingTheCall) {
  ReplyOutcome outcome = ClassifyReply(
      ServerException(AMQP_BASIC_DELIVER_METHOD, nullptr), "queue.bind");
  EXPECT_EQ(outcome.kind, ReplyOutcome::Kind::kConnectionFailed);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(outcome.status.message(),
              HasSubstr("queue.bind: unexpected broker method"));
}

TEST(ClassifyReplyTest, LibraryErrorsAndMissingRepliesFailTheConnection) {
  amqp_rpc_reply_t library{};
  library.reply_type = AMQP_RESPONSE_LIBRARY_EXCEPTION;
  library.library_error = AMQP_STATUS_TIMEOUT;
  ReplyOutcome timed_out = ClassifyReply(library, "channel.open");
  EXPECT_EQ(timed_out.kind, ReplyOutcome::Kind::kConnectionFailed);
  EXPECT_EQ(timed_out.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(timed_out.status.message(),
              HasSubstr(absl::StrCat("channel.open failed: ",
                                     amqp_error_string2(AMQP_STATUS_TIMEOUT))));

  amqp_rpc_reply_t none{};
  none.reply_type = AMQP_RESPONSE_NONE;
  ReplyOutcome nothing = ClassifyReply(none, "basic.consume");
  EXPECT_EQ(nothing.kind, ReplyOutcome::Kind::kConnectionFailed);
  EXPECT_EQ(nothing.status.message(), "basic.consume failed: no reply");
}

amqp_field_value_t Field(uint8_t kind) {
  amqp_field_value_t v;
  std::memset(&v, 0, sizeof(v));
  v.kind = kind;
  return v;
}

TEST(FieldToStringTest, PrintsStringsAndBooleans) {
  const std::string text = "caf\xc3\xa9";
  for (uint8_t kind : {AMQP_FIELD_KIND_UTF8, AMQP_FIELD_KIND_BYTES}) {
    amqp_field_value_t v = Field(kind);
    v.value.bytes = Bytes(text);
    EXPECT_EQ(FieldToString(v), text) << kind;
  }
  amqp_field_value_t b = Field(AMQP_FIELD_KIND_BOOLEAN);
  b.value.boolean = 1;
  EXPECT_EQ(FieldToString(b), "true");
  b.value.boolean = 0;
  EXPECT_EQ(FieldToString(b), "false");
}

TEST(FieldToStringTest, PrintsEveryNumericKind) {
  struct Case {
    uint8_t kind;
    void (*set)(amqp_field_value_t&);
    const char* text;
  };
  const Case cases[] = {
      {AMQP_FIELD_KIND_I8, [](auto& v) { v.value.i8 = -5; }, "-5"},
      {AMQP_FIELD_KIND_U8, [](auto& v) { v.value.u8 = 200; }, "200"},
      {AMQP_FIELD_KIND_I16, [](auto& v) { v.value.i16 = -30000; }, "-30000"},
      {AMQP_FIELD_KIND_U16, [](auto& v) { v.value.u16 = 65535; }, "65535"},
      {AMQP_FIELD_KIND_I32, [](auto& v) { v.value.i32 = -7; }, "-7"},
      {AMQP_FIELD_KIND_U32, [](auto& v) { v.value.u32 = 4000000000u; },
       "4000000000"},
      {AMQP_FIELD_KIND_I64, [](auto& v) { v.value.i64 = -9000000000; },
       "-9000000000"},
      {AMQP_FIELD_KIND_U64,
       [](auto& v) { v.value.u64 = 18000000000000000000u; },
       "18000000000000000000"},
      {AMQP_FIELD_KIND_TIMESTAMP, [](auto& v) { v.value.u64 = 1700000000; },
       "1700000000"},
      {AMQP_FIELD_KIND_F32, [](auto& v) { v.value.f32 = 1.5f; }, "1.5"},
      {AMQP_FIELD_KIND_F64, [](auto& v) { v.value.f64 = -0.25; }, "-0.25"},
  };
  for (const Case& c : cases) {
    amqp_field_value_t v = Field(c.kind);
    c.set(v);
    EXPECT_EQ(FieldToString(v), c.text) << "kind " << c.kind;
  }
}

TEST(FieldToStringTest, WhatHasNoTextFormIsEmpty) {
  EXPECT_EQ(FieldToString(Field(AMQP_FIELD_KIND_ARRAY)), "");
  EXPECT_EQ(FieldToString(Field(AMQP_FIELD_KIND_TABLE)), "");
  EXPECT_EQ(FieldToString(Field(AMQP_FIELD_KIND_DECIMAL)), "");
  EXPECT_EQ(FieldToString(Field(AMQP_FIELD_KIND_VOID)), "");
  // rabbitmq-c's null bytes (a string field with no data).
  EXPECT_EQ(FieldToString(Field(AMQP_FIELD_KIND_UTF8)), "");
}

// A pool for rabbitmq-c's decoders, emptied at the end of the test.
class Pool {
 public:
  Pool() { init_amqp_pool(&pool_, 4096); }
  ~Pool() { empty_amqp_pool(&pool_); }
  amqp_pool_t* get() { return &pool_; }

 private:
  amqp_pool_t pool_;
};

TEST(TableBuilderTest, ATableSurvivesTheWire) {
  const std::string key = "k";
  const std::string value("a\0b", 3);
  TableBuilder builder;
  builder.AddString(key, value);
  builder.AddLong("n", -42);
  builder.AddString("empty", "");
  amqp_table_t table = builder.table();

  std::vector<char> buffer(4096);
  amqp_bytes_t encoded{buffer.size(), buffer.data()};
  size_t written = 0;
  ASSERT_EQ(amqp_encode_table(encoded, &table, &written), AMQP_STATUS_OK);

  Pool pool;
  amqp_table_t decoded;
  size_t read = 0;
  amqp_bytes_t wire{written, buffer.data()};
  ASSERT_EQ(amqp_decode_table(wire, pool.get(), &decoded, &read),
            AMQP_STATUS_OK);
  EXPECT_EQ(read, written);
  ASSERT_EQ(decoded.num_entries, 3);
  EXPECT_EQ(String(decoded.entries[0].key), "k");
  EXPECT_EQ(decoded.entries[0].value.kind, AMQP_FIELD_KIND_UTF8);
  EXPECT_EQ(FieldToString(decoded.entries[0].value), value);
  EXPECT_EQ(String(decoded.entries[1].key), "n");
  EXPECT_EQ(decoded.entries[1].value.kind, AMQP_FIELD_KIND_I64);
  EXPECT_EQ(FieldToString(decoded.entries[1].value), "-42");
  EXPECT_EQ(FieldToString(decoded.entries[2].value), "");
}

TEST(TableBuilderTest, ATableCutShortIsRefusedByTheDecoder) {
  TableBuilder builder;
  builder.AddString("key", "a value long enough to cut");
  amqp_table_t table = builder.table();
  std::vector<char> buffer(4096);
  size_t written = 0;
  ASSERT_EQ(amqp_encode_table(amqp_bytes_t{buffer.size(), buffer.data()},
                              &table, &written),
            AMQP_STATUS_OK);
  Pool pool;
  for (size_t cut : {written - 1, written / 2, size_t{5}}) {
    amqp_table_t decoded;
    size_t read = 0;
    EXPECT_NE(amqp_decode_table(amqp_bytes_t{cut, buffer.data()}, pool.get(),
                                &decoded, &read),
              AMQP_STATUS_OK)
        << cut;
  }
}

TEST(AddQueueArgumentsTest, AddsWhatTheSpecAsksFor) {
  QueueSpec q;
  q.quorum = true;
  q.dead_letter_exchange = "dlx";
  q.dead_letter_routing_key = "dead";
  q.message_ttl = absl::Seconds(90);
  q.max_length = 1000;
  TableBuilder args;
  AddQueueArguments(q, args);
  amqp_table_t table = args.table();
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < table.num_entries; ++i) {
    entries.emplace_back(String(table.entries[i].key),
                         FieldToString(table.entries[i].value));
  }
  EXPECT_THAT(entries, ElementsAre(Pair("x-queue-type", "quorum"),
                                   Pair("x-dead-letter-exchange", "dlx"),
                                   Pair("x-dead-letter-routing-key", "dead"),
                                   Pair("x-message-ttl", "90000"),
                                   Pair("x-max-length", "1000")));
  EXPECT_EQ(table.entries[3].value.kind, AMQP_FIELD_KIND_I64);
}

TEST(AddQueueArgumentsTest, ADefaultSpecHasNoArguments) {
  TableBuilder args;
  AddQueueArguments(QueueSpec{}, args);
  EXPECT_TRUE(args.empty());
  EXPECT_EQ(args.table().num_entries, 0);
  EXPECT_EQ(args.table().entries, nullptr);
}

// Encodes `properties` as a content header would carry them and decodes
// them again, as the consuming side's rabbitmq-c does.
amqp_basic_properties_t* OverTheWire(const amqp_basic_properties_t* properties,
                                     std::vector<char>& buffer, Pool& pool) {
  buffer.resize(8192);
  const int written = amqp_encode_properties(
      AMQP_BASIC_CLASS, const_cast<amqp_basic_properties_t*>(properties),
      amqp_bytes_t{buffer.size(), buffer.data()});
  EXPECT_GT(written, 0);
  void* decoded = nullptr;
  EXPECT_EQ(
      amqp_decode_properties(
          AMQP_BASIC_CLASS, pool.get(),
          amqp_bytes_t{static_cast<size_t>(written), buffer.data()}, &decoded),
      AMQP_STATUS_OK);
  return static_cast<amqp_basic_properties_t*>(decoded);
}

TEST(PublishPropertiesTest, WhatIsPublishedIsWhatIsDelivered) {
  OutgoingMessage m;
  m.message_id = "id-1";
  m.content_type = "application/json";
  m.headers = {{"tenant", "acme"},
               {"binary", std::string("\x00\xff", 2)},
               {"empty", ""}};
  m.priority = 7;
  m.ttl = absl::Milliseconds(1500);
  m.persistent = false;
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  PublishProperties props(m, now);

  std::vector<char> buffer;
  Pool pool;
  amqp_basic_properties_t* wire = OverTheWire(props.get(), buffer, pool);
  ASSERT_NE(wire, nullptr);
  EXPECT_EQ(wire->delivery_mode, 1);
  EXPECT_EQ(wire->priority, 7);
  EXPECT_EQ(String(wire->expiration), "1500");

  Delivery d;
  DecodeProperties(*wire, d);
  EXPECT_EQ(d.message_id, "id-1");
  EXPECT_EQ(d.content_type, "application/json");
  EXPECT_EQ(d.timestamp, now);
  EXPECT_EQ(d.headers, m.headers);
  EXPECT_EQ(d.delivery_count, 0u);
}

TEST(PublishPropertiesTest, AMinimalMessageCarriesOnlyIdModeAndTimestamp) {
  OutgoingMessage m;  // persistent, no id, nothing else
  PublishProperties props(m, absl::FromUnixSeconds(5));
  EXPECT_EQ(props.get()->_flags, AMQP_BASIC_DELIVERY_MODE_FLAG |
                                     AMQP_BASIC_MESSAGE_ID_FLAG |
                                     AMQP_BASIC_TIMESTAMP_FLAG);
  EXPECT_EQ(props.get()->delivery_mode, 2);

  std::vector<char> buffer;
  Pool pool;
  amqp_basic_properties_t* wire = OverTheWire(props.get(), buffer, pool);
  ASSERT_NE(wire, nullptr);
  Delivery d;
  DecodeProperties(*wire, d);
  EXPECT_EQ(d.message_id, "");
  EXPECT_EQ(d.content_type, "");
  EXPECT_EQ(d.timestamp, absl::FromUnixSeconds(5));
  EXPECT_TRUE(d.headers.empty());
  EXPECT_EQ(d.reply_to, "");
  EXPECT_EQ(d.correlation_id, "");
}

TEST(PublishPropertiesTest, ReplyToAndCorrelationIdTravelAsProperties) {
  OutgoingMessage m;
  m.reply_to = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUA0MjYx";
  m.correlation_id = "3f2a-request-7";
  PublishProperties props(m, absl::FromUnixSeconds(5));

  std::vector<char> buffer;
  Pool pool;
  amqp_basic_properties_t* wire = OverTheWire(props.get(), buffer, pool);
  ASSERT_NE(wire, nullptr);
  Delivery d;
  DecodeProperties(*wire, d);
  EXPECT_EQ(d.reply_to, m.reply_to);
  EXPECT_EQ(d.correlation_id, m.correlation_id);
  EXPECT_TRUE(d.headers.empty());  // properties, not headers
}

// Headers as a broker may send them, not as Warren publishes them.
class ForeignHeaders {
 public:
  void Add(const std::string& key, amqp_field_value_t value) {
    keys_.push_back(key);
    values_.push_back(value);
  }
  amqp_basic_properties_t properties() {
    entries_.clear();
    for (size_t i = 0; i < keys_.size(); ++i) {
      entries_.push_back(amqp_table_entry_t{Bytes(keys_[i]), values_[i]});
    }
    amqp_basic_properties_t p;
    std::memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_HEADERS_FLAG;
    p.headers =
        amqp_table_t{static_cast<int>(entries_.size()), entries_.data()};
    return p;
  }

 private:
  std::vector<std::string> keys_;
  std::vector<amqp_field_value_t> values_;
  std::vector<amqp_table_entry_t> entries_;
};

uint32_t DeliveryCountOf(amqp_field_value_t value) {
  ForeignHeaders h;
  h.Add("x-delivery-count", value);
  Delivery d;
  DecodeProperties(h.properties(), d);
  EXPECT_TRUE(d.headers.empty());  // never passed on as a header
  return d.delivery_count;
}

TEST(DecodePropertiesTest, ReadsTheDeliveryCountOfAnyNumericKind) {
  amqp_field_value_t v = Field(AMQP_FIELD_KIND_I64);
  v.value.i64 = 3;
  EXPECT_EQ(DeliveryCountOf(v), 3u);
  v = Field(AMQP_FIELD_KIND_U8);
  v.value.u8 = 9;
  EXPECT_EQ(DeliveryCountOf(v), 9u);
  const std::string text = "12";
  v = Field(AMQP_FIELD_KIND_UTF8);
  v.value.bytes = Bytes(text);
  EXPECT_EQ(DeliveryCountOf(v), 12u);
}

TEST(DecodePropertiesTest, AMalformedDeliveryCountCountsAsNone) {
  amqp_field_value_t v = Field(AMQP_FIELD_KIND_I64);
  v.value.i64 = -1;
  EXPECT_EQ(DeliveryCountOf(v), 0u);
  v.value.i64 = int64_t{1} << 40;  // beyond uint32
  EXPECT_EQ(DeliveryCountOf(v), 0u);
  const std::string text = "many";
  v = Field(AMQP_FIELD_KIND_UTF8);
  v.value.bytes = Bytes(text);
  EXPECT_EQ(DeliveryCountOf(v), 0u);
  v = Field(AMQP_FIELD_KIND_F64);
  v.value.f64 = 2.5;
  EXPECT_EQ(DeliveryCountOf(v), 0u);
  EXPECT_EQ(DeliveryCountOf(Field(AMQP_FIELD_KIND_TABLE)), 0u);
}

TEST(DecodePropertiesTest, LeavesOutNestedValuesAndPrintsScalars) {
  ForeignHeaders h;
  h.Add("x-death", Field(AMQP_FIELD_KIND_ARRAY));
  h.Add("nested", Field(AMQP_FIELD_KIND_TABLE));
  amqp_field_value_t flag = Field(AMQP_FIELD_KIND_BOOLEAN);
  flag.value.boolean = 1;
  h.Add("flag", flag);
  amqp_field_value_t n = Field(AMQP_FIELD_KIND_I32);
  n.value.i32 = -3;
  h.Add("n", n);
  h.Add("void", Field(AMQP_FIELD_KIND_VOID));
  Delivery d;
  DecodeProperties(h.properties(), d);
  EXPECT_THAT(d.headers, ElementsAre(Pair("flag", "true"), Pair("n", "-3"),
                                     Pair("void", "")));
}

TEST(DecodePropertiesTest, IgnoresFieldsWhoseFlagIsNotSet) {
  const std::string id = "stale";
  amqp_basic_properties_t p;
  std::memset(&p, 0, sizeof(p));
  p.message_id = Bytes(id);  // present in memory, absent from the flags
  p.timestamp = 99;
  Delivery d;
  DecodeProperties(p, d);
  EXPECT_EQ(d.message_id, "");
  EXPECT_FALSE(d.timestamp.has_value());
}

std::vector<std::pair<std::string, std::string>> Entries(TableBuilder& args) {
  amqp_table_t table = args.table();
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < table.num_entries; ++i) {
    entries.emplace_back(String(table.entries[i].key),
                         FieldToString(table.entries[i].value));
  }
  return entries;
}

TEST(AddQueueArgumentsTest, AddsPriorityLimitSingleActiveAndStreamArguments) {
  QueueSpec q;
  q.quorum = true;
  q.max_priority = 10;
  q.delivery_limit = 2;
  q.single_active_consumer = true;
  q.max_length_bytes = 1 << 20;
  TableBuilder args;
  AddQueueArguments(q, args);
  EXPECT_THAT(
      Entries(args),
      ElementsAre(Pair("x-queue-type", "quorum"), Pair("x-max-priority", "10"),
                  Pair("x-delivery-limit", "2"),
                  Pair("x-single-active-consumer", "true"),
                  Pair("x-max-length-bytes", "1048576")));
  EXPECT_EQ(args.table().entries[3].value.kind, AMQP_FIELD_KIND_BOOLEAN);

  QueueSpec stream;
  stream.stream = true;
  stream.max_age = "3600s";
  TableBuilder stream_args;
  AddQueueArguments(stream, stream_args);
  EXPECT_THAT(Entries(stream_args), ElementsAre(Pair("x-queue-type", "stream"),
                                                Pair("x-max-age", "3600s")));
}

TEST(AddBindingArgumentsTest, AHeadersBindingMatchesAllOrAnyOfItsHeaders) {
  BindingSpec b;
  b.kind = ExchangeKind::kHeaders;
  b.match_headers = {{"kind", "order"}, {"region", "eu"}};
  TableBuilder all;
  AddBindingArguments(b, all);
  EXPECT_THAT(Entries(all),
              ElementsAre(Pair("x-match", "all"), Pair("kind", "order"),
                          Pair("region", "eu")));
  b.match_any = true;
  TableBuilder any;
  AddBindingArguments(b, any);
  EXPECT_THAT(Entries(any),
              ElementsAre(Pair("x-match", "any"), Pair("kind", "order"),
                          Pair("region", "eu")));
}

TEST(AddBindingArgumentsTest, OtherBindingsHaveNoArguments) {
  BindingSpec topic;
  topic.match_headers = {{"kind", "order"}};
  TableBuilder args;
  AddBindingArguments(topic, args);
  EXPECT_TRUE(args.empty());
  BindingSpec every;
  every.kind = ExchangeKind::kHeaders;
  AddBindingArguments(every, args);
  EXPECT_TRUE(args.empty());
}

TEST(AddConsumeArgumentsTest, SpellsEveryStreamOffset) {
  using Kind = StreamStart::Kind;
  auto offset_of = [](Kind kind, int64_t value) {
    SubscribeSpec spec;
    spec.stream_start = StreamStart{kind, value};
    TableBuilder args;
    AddConsumeArguments(spec, args);
    EXPECT_EQ(args.table().num_entries, 1);
    EXPECT_EQ(String(args.table().entries[0].key), "x-stream-offset");
    return std::make_pair(args.table().entries[0].value.kind,
                          FieldToString(args.table().entries[0].value));
  };
  EXPECT_EQ(
      offset_of(Kind::kFirst, 0),
      std::make_pair(uint8_t{AMQP_FIELD_KIND_UTF8}, std::string("first")));
  EXPECT_EQ(offset_of(Kind::kLast, 0),
            std::make_pair(uint8_t{AMQP_FIELD_KIND_UTF8}, std::string("last")));
  EXPECT_EQ(offset_of(Kind::kNext, 0),
            std::make_pair(uint8_t{AMQP_FIELD_KIND_UTF8}, std::string("next")));
  EXPECT_EQ(offset_of(Kind::kOffset, 42),
            std::make_pair(uint8_t{AMQP_FIELD_KIND_I64}, std::string("42")));
  EXPECT_EQ(offset_of(Kind::kTimestamp, 1700000000),
            std::make_pair(uint8_t{AMQP_FIELD_KIND_TIMESTAMP},
                           std::string("1700000000")));
  TableBuilder none;
  AddConsumeArguments(SubscribeSpec{}, none);
  EXPECT_TRUE(none.empty());
}

TEST(DecodePropertiesTest, TakesTheStreamOffsetOutOfTheHeaders) {
  ForeignHeaders h;
  amqp_field_value_t offset = Field(AMQP_FIELD_KIND_I64);
  offset.value.i64 = 1234;
  h.Add("x-stream-offset", offset);
  amqp_field_value_t kept = Field(AMQP_FIELD_KIND_I32);
  kept.value.i32 = 1;
  h.Add("kept", kept);
  Delivery d;
  DecodeProperties(h.properties(), d);
  EXPECT_EQ(d.stream_offset, std::optional<uint64_t>(1234));
  EXPECT_THAT(d.headers, ElementsAre(Pair("kept", "1")));
}

}  // namespace
}  // namespace warren::amqp
