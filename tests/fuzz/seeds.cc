// Writes the seed corpus of the fuzz targets: valid flows and typical bad
// inputs, one file each, under <dir>/<target>/. Run it again when the protos
// or the step encoding change:
//   build/fuzz/tests/fuzz/fuzz_seeds tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message.h"
#include "tests/fuzz/fuzz_ops.h"
#include "tests/fuzz/fuzz_support.h"
#include "warren/v1/config.pb.h"
#include "warren/v1/election.pb.h"
#include "warren/v1/lock.pb.h"
#include "warren/v1/messaging.pb.h"

namespace warren::fuzz {
namespace {

namespace v1 = ::warren::v1;

std::filesystem::path root;

void Write(const std::string& target, const std::string& name,
           const std::string& bytes) {
  const auto dir = root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Deterministic (map entries in key order), so that regenerated seeds only
// change when their content does.
std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string Validation(uint8_t which, const google::protobuf::Message& m) {
  return std::string(1, static_cast<char>(which)) + Serialize(m);
}

void ValidationSeeds() {
  const std::string t = "validation_fuzzer";
  v1::PublishRequest p;
  p.set_exchange("orders");
  p.set_routing_key("orders.created");
  p.set_payload("hello");
  (*p.mutable_headers())["trace"] = "abc";
  p.set_priority(5);
  p.mutable_ttl()->set_seconds(60);
  Write(t, "publish_ok", Validation(kPublish, p));
  v1::PublishRequest bad = p;
  bad.set_routing_key(std::string(300, 'k'));
  Write(t, "publish_long_key", Validation(kPublish, bad));
  bad = p;
  bad.set_priority(256);
  bad.mutable_ttl()->set_seconds(-1);
  Write(t, "publish_bad_priority", Validation(kPublish, bad));
  bad = p;
  (*bad.mutable_headers())[""] = "x";
  Write(t, "publish_empty_header", Validation(kPublish, bad));
  v1::PublishStreamRequest ps;
  ps.set_sequence(7);
  *ps.mutable_message() = p;
  ps.mutable_message()->set_payload(std::string(5000, 'p'));
  Write(t, "publish_stream_big", Validation(kPublishStream, ps));
  v1::PublishRequest fenced = p;
  fenced.mutable_fence()->set_election("jobs/dispatcher");
  fenced.mutable_fence()->set_fencing_token(4294967312);
  Write(t, "publish_fenced", Validation(kPublish, fenced));
  bad = fenced;
  bad.mutable_fence()->set_lock("jobs/c_x");
  bad.mutable_fence()->set_fencing_token(0);
  Write(t, "publish_bad_fence", Validation(kPublish, bad));
  bad = fenced;
  (*bad.mutable_headers())["warren-fencing-token"] = "9";
  Write(t, "publish_forged_fence_header", Validation(kPublish, bad));
  v1::CallRequest call;
  *call.mutable_message() = p;
  Write(t, "call_ok", Validation(kCall, call));
  call.mutable_message()->set_reply_to("amq.rabbitmq.reply-to");
  call.mutable_message()->set_correlation_id("c-1");
  Write(t, "call_own_reply_to", Validation(kCall, call));

  v1::SubscribeStart s;
  s.set_queue("orders");
  s.set_max_in_flight(10);
  Write(t, "subscribe_queue", Validation(kSubscribeStart, s));
  v1::SubscribeStart topic;
  topic.mutable_topic()->set_exchange("events");
  topic.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_TOPIC);
  topic.mutable_topic()->add_binding_keys("a.*");
  topic.set_group("workers");
  topic.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  topic.mutable_queue_options()->set_dead_letter_exchange("dlx");
  topic.mutable_queue_options()->mutable_message_ttl()->set_seconds(30);
  topic.mutable_queue_options()->set_max_length(1000);
  Write(t, "subscribe_topic_group", Validation(kSubscribeStart, topic));
  topic.clear_group();
  Write(t, "subscribe_quorum_no_group", Validation(kSubscribeStart, topic));
  s.set_max_in_flight(100000);
  Write(t, "subscribe_over_cap", Validation(kSubscribeStart, s));
  v1::SubscribeStart none;
  Write(t, "subscribe_no_source", Validation(kSubscribeStart, none));
  v1::SubscribeStart stream;
  stream.set_queue("audit");
  stream.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_STREAM);
  stream.mutable_queue_options()->mutable_max_age()->set_seconds(3600);
  stream.mutable_queue_options()->set_max_length_bytes(1 << 30);
  stream.mutable_offset()->set_offset(42);
  Write(t, "subscribe_stream_offset", Validation(kSubscribeStart, stream));
  stream.mutable_offset()->mutable_timestamp()->set_seconds(1700000000);
  Write(t, "subscribe_stream_timestamp", Validation(kSubscribeStart, stream));
  stream.mutable_queue_options()->set_max_priority(3);
  Write(t, "subscribe_stream_priority", Validation(kSubscribeStart, stream));
  v1::SubscribeStart limited;
  limited.set_queue("jobs");
  limited.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  limited.mutable_queue_options()->set_delivery_limit(3);
  limited.mutable_queue_options()->set_single_active_consumer(true);
  Write(t, "subscribe_quorum_limit_sac", Validation(kSubscribeStart, limited));
  limited.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_CLASSIC);
  limited.mutable_queue_options()->set_max_priority(10);
  Write(t, "subscribe_classic_limit", Validation(kSubscribeStart, limited));
  v1::SubscribeStart headers;
  headers.mutable_topic()->set_exchange("routing");
  headers.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_HEADERS);
  (*headers.mutable_topic()->mutable_match_headers())["region"] = "eu";
  headers.mutable_topic()->set_match_any(true);
  Write(t, "subscribe_headers_any", Validation(kSubscribeStart, headers));
  (*headers.mutable_topic()->mutable_match_headers())["x-match"] = "all";
  Write(t, "subscribe_headers_x_key", Validation(kSubscribeStart, headers));

  v1::PutConfigRequest put;
  put.set_key("app/db/url");
  put.set_value("postgres://db");
  put.set_expected_version(3);
  Write(t, "put_ok", Validation(kPutConfig, put));
  put.set_create_only(true);
  Write(t, "put_both", Validation(kPutConfig, put));
  put.clear_create_only();
  put.set_key("app/../etc");
  Write(t, "put_dotdot", Validation(kPutConfig, put));
  v1::DeleteConfigRequest del;
  del.set_key("app/db");
  del.set_recursive(true);
  del.set_expected_version(-1);
  Write(t, "delete_bad_version", Validation(kDeleteConfig, del));
  v1::ListConfigRequest list;
  list.set_prefix("app");
  list.set_page_size(10);
  // "v1:app/db" in web-safe base64: a token this server issues.
  list.set_page_token("djE6YXBwL2Ri");
  Write(t, "list_token", Validation(kListConfig, list));
  list.set_page_token("not a token");
  Write(t, "list_bad_token", Validation(kListConfig, list));
  v1::WatchConfigRequest watch;
  watch.set_key("");
  watch.set_prefix(true);
  watch.mutable_heartbeat_interval()->set_seconds(5);
  Write(t, "watch_all", Validation(kWatchConfig, watch));

  v1::TxnRequest txn;
  auto* check = txn.add_checks();
  check->set_key("app/db/url");
  check->set_version(3);
  txn.add_checks()->set_key("app/flag");
  txn.mutable_checks(1)->set_exists(false);
  txn.add_ops()->mutable_put()->set_key("app/db/url");
  txn.mutable_ops(0)->mutable_put()->set_value("postgres://db2");
  txn.add_ops()->mutable_delete_()->set_key("app/old");
  Write(t, "txn_ok", Validation(kTxn, txn));
  txn.add_ops()->mutable_delete_()->set_key("app/db/url");
  Write(t, "txn_same_key", Validation(kTxn, txn));
  v1::HoldKeyRequest hold;
  hold.set_key("services/api/instance-1");
  hold.set_value("10.0.0.1:8080");
  hold.mutable_heartbeat_interval()->set_seconds(2);
  Write(t, "hold_ok", Validation(kHoldKey, hold));
  hold.mutable_heartbeat_interval()->set_seconds(-2);
  Write(t, "hold_negative_heartbeat", Validation(kHoldKey, hold));
  v1::PublishRequest delayed;
  delayed.set_exchange("events");
  delayed.set_routing_key("a.b");
  delayed.mutable_delay()->set_nanos(300000000);
  Write(t, "publish_delay_ok", Validation(kPublish, delayed));
  delayed.set_mandatory(true);
  Write(t, "publish_delay_mandatory", Validation(kPublish, delayed));
  v1::Nack nack;
  nack.add_delivery_ids(1);
  nack.mutable_retry_after()->set_seconds(1);
  Write(t, "nack_retry_ok", Validation(kNack, nack));
  Write(
      t, "nack_retry_stream",
      std::string(1, static_cast<char>(kNack + kValidators)) + Serialize(nack));
  nack.mutable_retry_after()->set_seconds(-1);
  Write(t, "nack_retry_negative", Validation(kNack, nack));

  v1::Campaign c;
  c.set_election("jobs/leader");
  c.set_candidate_id("host-a");
  c.set_value("10.0.0.1");
  c.mutable_heartbeat_interval()->set_seconds(60);
  Write(t, "campaign_ok", Validation(kCampaign, c));
  c.set_candidate_id("a/b");
  Write(t, "campaign_bad_id", Validation(kCampaign, c));

  Write(t, "name_ok", std::string(1, kName) + "a/b.c/d_e-f");
  Write(t, "name_empty_segment", std::string(1, kName) + "a//b");
  Write(t, "name_bad_byte", std::string(1, kName) + "a/\xff");
}

std::string Op(uint8_t op, const std::string& arg = "") {
  std::string out;
  AppendStep(&out, op, arg);
  return out;
}
std::string Sub(const v1::SubscribeRequest& r) {
  return Op(kSubscribeWrite, Serialize(r));
}
std::string El(const v1::ElectRequest& r) {
  return Op(kElectWrite, Serialize(r));
}

void SubscribeSeeds() {
  const std::string t = "subscribe_fuzzer";
  v1::SubscribeRequest start;
  start.mutable_start()->set_queue("orders");
  start.mutable_start()->set_max_in_flight(5);
  v1::SubscribeRequest ack;
  ack.mutable_ack()->add_delivery_ids(1);
  v1::SubscribeRequest nack;
  nack.mutable_nack()->add_delivery_ids(2);
  nack.mutable_nack()->set_requeue(true);
  Write(t, "start_deliver_ack_nack",
        Sub(start) + Op(kSubscribeAwait) + Op(kDeliver, "one") +
            Op(kDeliver, std::string("\x03two", 4)) + Sub(ack) + Sub(nack) +
            Op(kSubscribeWritesDone));
  Write(t, "start_deliver_settle_all",
        Sub(start) + Op(kDeliver, "a") + Op(kDeliver, "b") +
            Op(kSettleAll, std::string("\x01", 1)));
  Write(t, "ack_before_start", Sub(ack) + Sub(start));
  Write(t, "start_twice", Sub(start) + Sub(start));
  Write(t, "ack_unknown", Sub(start) + Sub(ack));
  Write(t, "ack_twice", Sub(start) + Op(kDeliver, "x") + Sub(ack) + Sub(ack));
  Write(t, "broker_ends",
        Sub(start) + Op(kDeliver, "x") +
            Op(kBrokerEnd, std::string("\x02", 1)) + Sub(ack));
  Write(t, "cancel_with_unacked",
        Sub(start) + Op(kDeliver, "x") + Op(kSubscribeCancel));
  Write(t, "half_close_with_unacked",
        Sub(start) + Op(kDeliver, "x") + Op(kSubscribeWritesDone) +
            Op(kDeliver, "y"));
  // A publisher's timestamp property far outside the Timestamp range.
  Write(
      t, "delivery_far_timestamp",
      Sub(start) +
          Op(kDeliver, std::string("\x04\xff\xff\xff\xff\xff\xff\xff\x7f", 9)) +
          Op(kSettleAll));
  v1::SubscribeRequest topic;
  topic.mutable_start()->mutable_topic()->set_exchange("events");
  topic.mutable_start()->mutable_topic()->add_binding_keys("#");
  topic.mutable_start()->mutable_heartbeat_interval()->set_nanos(100000000);
  Write(t, "topic_fanout",
        Sub(topic) + Op(kSubscribeAwait) + Op(kSubscribeAwait));
  // A stream from offset 5: the broker's chunk also holds 3, which the
  // server settles without showing it; a nack on a stream settles too.
  v1::SubscribeRequest stream;
  stream.mutable_start()->set_queue("audit");
  stream.mutable_start()->mutable_queue_options()->set_queue_type(
      v1::QUEUE_TYPE_STREAM);
  stream.mutable_start()->mutable_offset()->set_offset(5);
  Write(t, "stream_skips_below_offset",
        Sub(stream) + Op(kSubscribeAwait) +
            Op(kDeliver, std::string("\x08\x03", 2)) +
            Op(kDeliver, std::string("\x08\x05", 2)) + Sub(nack) +
            Op(kSubscribeWritesDone));
  v1::SubscribeRequest empty;
  Write(t, "empty_request", Sub(empty));
  v1::SubscribeRequest bad;
  bad.mutable_start()->set_queue(std::string(256, 'q'));
  Write(t, "bad_start", Sub(bad));
}

void ElectSeeds() {
  const std::string t = "elect_fuzzer";
  v1::ElectRequest campaign;
  campaign.mutable_campaign()->set_election("jobs/leader");
  campaign.mutable_campaign()->set_candidate_id("host-a");
  campaign.mutable_campaign()->set_value("v1");
  v1::ElectRequest rejoin = campaign;
  rejoin.mutable_campaign()->set_rejoin_after_expiry(true);
  v1::ElectRequest proclaim;
  proclaim.mutable_proclaim()->set_value("v2");
  v1::ElectRequest resign;
  resign.mutable_resign();
  const std::string ahead(1, '\x01'), behind(1, '\x00');
  Write(t, "campaign_proclaim_resign",
        El(campaign) + Op(kElectAwait) + El(proclaim) + El(resign) +
            Op(kElectAwait));
  Write(t, "follower_proclaims",
        El(campaign) + Op(kRivalJoins, ahead) + Op(kElectAwait) + El(proclaim));
  // A node of the candidates' form that no session holds, ahead of this
  // candidate: it leads all the same (the proclaim succeeds).
  Write(t, "phantom_ahead_is_no_leader",
        El(campaign) + Op(kRivalJoins, std::string(1, '\x03')) +
            Op(kElectAwait) + El(proclaim) + Op(kElectAwait));
  Write(t, "rival_behind_then_leaves",
        El(campaign) + Op(kRivalJoins, behind) + Op(kElectAwait) +
            Op(kRivalLeaves) + Op(kElectAwait));
  Write(t, "leader_leaves_follower_elected",
        Op(kElectWrite, Serialize(campaign)) + Op(kElectAwait) +
            Op(kRivalJoins, ahead) + Op(kElectAwait) + Op(kRivalLeaves) +
            Op(kElectAwait));
  Write(t, "suspend_reconnect",
        El(campaign) + Op(kElectAwait) + Op(kDisconnect) + Op(kElectAwait) +
            Op(kReconnect) + Op(kElectAwait));
  Write(t, "expire_no_rejoin",
        El(campaign) + Op(kElectAwait) + Op(kExpire) + Op(kElectAwait));
  Write(t, "expire_rejoin",
        El(rejoin) + Op(kElectAwait) + Op(kExpire) + Op(kElectAwait) +
            Op(kElectAwait));
  Write(
      t, "cancel_while_suspended",
      El(campaign) + Op(kElectAwait) + Op(kDisconnect) + Op(kElectEnd, ahead));
  Write(t, "half_close_at_once", El(campaign) + Op(kElectEnd, behind));
  // The session expires while the first create is still on its way.
  Write(t, "expire_at_once_rejoin", El(rejoin) + Op(kExpire));
  Write(t, "campaign_twice", El(campaign) + El(campaign));
  Write(t, "proclaim_before_campaign", El(proclaim));
  Write(t, "resign_before_campaign", El(resign));
  v1::ElectRequest bad = campaign;
  bad.mutable_campaign()->set_election("jobs/../x");
  Write(t, "bad_election", El(bad));
  // Security issue 15, item 2: a nested name in the candidates' form.
  bad.mutable_campaign()->set_election("jobs/leader/c_a----------");
  Write(t, "nested_candidate_election", El(bad));
  v1::ElectRequest empty;
  Write(t, "empty_request", El(empty));
}

std::string Lk(const v1::LockRequest& r) {
  return Op(kLockWrite, Serialize(r));
}

void LockSeeds() {
  const std::string t = "lock_fuzzer";
  v1::LockRequest mutex;
  mutex.mutable_acquire()->set_name("jobs/db");
  mutex.mutable_acquire()->set_holder_id("host-a");
  mutex.mutable_acquire()->set_value("v1");
  mutex.mutable_acquire()->mutable_heartbeat_interval()->set_nanos(100000000);
  v1::LockRequest pool = mutex;
  pool.mutable_acquire()->set_limit(3);
  v1::LockRequest once = mutex;
  once.mutable_acquire()->mutable_wait_timeout();
  v1::LockRequest timed = mutex;
  timed.mutable_acquire()->mutable_wait_timeout()->set_nanos(5000000);
  v1::LockRequest release;
  release.mutable_release();
  // Flags: bit 0 ahead, bit 1 a node no session holds; second byte: limit.
  const std::string ahead("\x01\x01", 2);
  const std::string ahead_of_three("\x01\x03", 2);
  Write(t, "acquire_release",
        Lk(mutex) + Op(kLockAwait) + Lk(release) + Op(kLockAwait));
  Write(t, "wait_behind_a_holder_then_acquire",
        Lk(mutex) + Op(kHolderJoins, ahead) + Op(kLockAwait) +
            Op(kHolderLeaves) + Op(kLockAwait) + Op(kLockAwait));
  Write(t, "try_once_while_held",
        Lk(once) + Op(kHolderJoins, ahead) + Op(kLockAwait));
  Write(t, "timed_wait_runs_out",
        Lk(timed) + Op(kHolderJoins, ahead) + Op(kLockAwait) + Op(kLockAwait));
  Write(t, "semaphore_with_others",
        Lk(pool) + Op(kHolderJoins, ahead_of_three) +
            Op(kHolderJoins, ahead_of_three) + Op(kLockAwait) +
            Op(kHolderLeaves) + Op(kLockAwait));
  Write(t, "limit_differs",
        Lk(pool) + Op(kHolderJoins, ahead) + Op(kLockAwait));
  Write(t, "phantom_ahead_is_no_holder",
        Lk(mutex) + Op(kHolderJoins, std::string("\x03\x01", 2)) +
            Op(kLockAwait) + Op(kLockAwait));
  Write(t, "suspend_reconnect",
        Lk(mutex) + Op(kLockAwait) + Op(kLockDisconnect) + Op(kLockAwait) +
            Op(kLockReconnect) + Op(kLockAwait));
  Write(t, "expire",
        Lk(mutex) + Op(kLockAwait) + Op(kLockExpire) + Op(kLockAwait));
  Write(t, "cancel_while_suspended",
        Lk(mutex) + Op(kLockAwait) + Op(kLockDisconnect) +
            Op(kLockEnd, std::string(1, '\x01')));
  Write(t, "half_close_while_waiting",
        Lk(mutex) + Op(kHolderJoins, ahead) + Op(kLockAwait) + Op(kLockEnd));
  Write(t, "acquire_twice", Lk(mutex) + Lk(mutex));
  Write(t, "release_first", Lk(release));
  v1::LockRequest bad = mutex;
  bad.mutable_acquire()->set_name("jobs/c_x");
  Write(t, "bad_name", Lk(bad));
  bad = mutex;
  bad.mutable_acquire()->set_limit(5000);
  Write(t, "bad_limit", Lk(bad));
  v1::LockRequest empty;
  Write(t, "empty_request", Lk(empty));
}

}  // namespace
}  // namespace warren::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  warren::fuzz::root = argv[1];
  warren::fuzz::ValidationSeeds();
  warren::fuzz::SubscribeSeeds();
  warren::fuzz::ElectSeeds();
  warren::fuzz::LockSeeds();
  return 0;
}
