// The vocabulary of the fuzz targets' inputs, shared with seeds.cc (which
// writes the seed corpus in it).
#pragma once

#include <cstdint>

namespace warren::fuzz {

// validation_fuzzer: the first byte (modulo kValidators) picks the validator;
// the rest is the serialized request, or for kName the raw bytes (first
// byte's bit 7: an empty name is allowed, as for a prefix).
enum Validator : uint8_t {
  kPublish = 0,
  kPublishStream = 1,
  kSubscribeStart = 2,
  kPutConfig = 3,
  kDeleteConfig = 4,
  kListConfig = 5,
  kWatchConfig = 6,
  kCampaign = 7,
  kName = 8,
  kTxn = 9,
  kHoldKey = 10,  // the first request of a stream
  kCall = 11,
  // A Nack; the first byte divided by kValidators, when odd: the
  // subscription is on a stream queue.
  kNack = 12,
  kValidators = 13,
};

// subscribe_fuzzer: the steps' operations (op byte modulo kSubscribeOps).
enum SubscribeOp : uint8_t {
  kSubscribeWrite = 0,  // arg: a serialized SubscribeRequest
  // arg: the payload; flags bit 0 headers, 1 redelivered, 2 a timestamp
  // (the arg's next 8 bytes)
  kDeliver = 1,
  kBrokerEnd = 2,       // flags pick the channel error
  kSubscribeAwait = 3,  // wait briefly for the next response
  kSubscribeWritesDone = 4,
  kSubscribeCancel = 5,
  kSettleAll = 6,  // ack every delivery (nack: flags bit 0; requeue: bit 1)
  kSubscribeOps = 7,
};

// elect_fuzzer: the steps' operations (op byte modulo kElectOps).
enum ElectOp : uint8_t {
  kElectWrite = 0,  // arg: a serialized ElectRequest
  kElectAwait = 1,  // wait briefly for the next response
  kDisconnect = 2,
  kReconnect = 3,
  kExpire = 4,
  // flags bit 0: ahead of every candidate (it leads); the rest of the arg,
  // if any, is its node's data (else a valid candidate's)
  kRivalJoins = 5,
  kRivalLeaves = 6,
  kElectEnd = 7,  // flags bit 0: cancel, else half-close
  kElectOps = 8,
};

// lock_fuzzer: the steps' operations (op byte modulo kLockOps).
enum LockOp : uint8_t {
  kLockWrite = 0,  // arg: a serialized LockRequest
  kLockAwait = 1,  // wait briefly for the next response
  kLockDisconnect = 2,
  kLockReconnect = 3,
  kLockExpire = 4,
  // Another session's request: flags bit 0 ahead of every node this server
  // makes (it holds), bit 1 a node no session holds instead (persistent);
  // the arg's second byte, if any, is its limit, the rest its node's data
  // (else a valid Acquire's).
  kHolderJoins = 5,
  kHolderLeaves = 6,
  kLockEnd = 7,  // flags bit 0: cancel, else half-close
  kLockOps = 8,
};

}  // namespace warren::fuzz
