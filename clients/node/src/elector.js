// Elector: ElectionService.Elect as an EventEmitter, with the leader lease.
//
// Events: 'elected' { leader, fencingToken }, 'following' (leader | null),
// 'lost' { reason, error? }, 'reconnecting' { error, delayMs }, 'error'
// (fatal: the request itself is wrong), 'close'.
//
// Safety first: every doubt about leadership is reported as 'lost' at once.
// - The lease: while leading, the server sends a heartbeat every
//   `heartbeatIntervalMs`, and only while its ZooKeeper session is connected.
//   If no message at all arrives for two intervals, this elector declares
//   'lost' (reason 'lease_expired') by itself and drops the stream, without
//   waiting for a 'lost' that a frozen server or a partition would never
//   deliver. The server caps the interval at a third of its session timeout,
//   so two missed heartbeats come before another candidate could be elected.
// - A stream that breaks while leading is 'lost' (reason 'stream_broken')
//   at once: the server deletes the candidate's node when the stream ends.
//
// By default (`recampaign: true`) the elector stays a candidate until
// close(): after a loss it keeps (or reopens, with capped jittered backoff,
// when the stream ends with a code the shared policy resubscribes on) its
// candidacy, like Curator's LeaderLatch. With `recampaign: false` it ends
// after the first loss of leadership or of its stream ('close' follows).
//
// An aborted `signal` ends the candidacy at once: the stream is cancelled
// (the server deletes the candidate's node when it sees that), a leader
// reports 'lost' (reason 'aborted') synchronously, and `closed` rejects with
// an AbortError.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fenceFromElector } from './fence.js';
import { DEFAULTS, streamDecision } from './policy.js';
import {
  Ending, Redial, Timer, durationFromMs, leaderFromProto, lossReasonName, silenceError, streamEndError, streamMetadata,
  toBytes,
} from './util.js';

export class Elector extends EventEmitter {
  #client;
  #campaign;
  #recampaign;
  #heartbeatIntervalMs;
  #redial;
  #call = null;
  #answered = false; // the current stream has sent something
  #generation = 0;
  #leading = false;
  #leader = null;
  #closing = false;
  #leaseTimer = new Timer();
  #ending;

  /**
   * @param {object} client a raw warren.v1.ElectionService client
   * @param {object} options see index.d.ts (ElectOptions)
   */
  constructor(client, {
    election, candidateId = randomUUID(), value = '', heartbeatIntervalMs = DEFAULTS.elector.heartbeatIntervalMs,
    recampaign = true, rejoinAfterExpiry = recampaign && DEFAULTS.elector.rejoinAfterExpiry, backoff = {}, signal,
  } = {}) {
    super();
    if (typeof election !== 'string' || election === '') throw new TypeError('elect: election is required');
    this.#client = client;
    this.#recampaign = recampaign;
    this.#heartbeatIntervalMs = heartbeatIntervalMs;
    this.#redial = new Redial(this, backoff, () => this.#connect());
    this.#campaign = {
      election,
      candidateId,
      value: toBytes(value),
      rejoinAfterExpiry,
      heartbeatInterval: durationFromMs(heartbeatIntervalMs),
    };
    this.#ending = new Ending(signal, (error) => this.#abort(error));
    process.nextTick(() => this.#ending.abortIfAborted() || this.#connect());
  }

  /** The election's name. */
  get election() {
    return this.#campaign.election;
  }

  /** This candidate's id (generated once, kept across re-campaigns). */
  get candidateId() {
    return this.#campaign.candidateId;
  }

  /** True while this candidate leads (and its lease holds). */
  get isLeader() {
    return this.#leading;
  }

  /** The leader as last reported (this candidate while it leads), or null. */
  get leader() {
    return this.#leader;
  }

  /** The fencing token while leading (a bigint), else null. */
  get fencingToken() {
    return this.#leading ? this.#leader.fencingToken : null;
  }

  /**
   * The fence of this leadership ({ election, fencingToken }) for fenced
   * writes and publishes, while leading; else null.
   */
  get fence() {
    return this.#leading ? fenceFromElector(this) : null;
  }

  /**
   * Resolves after close() or after the elector ended by itself; rejects
   * with an AbortError when `signal` aborted it.
   */
  get closed() {
    return this.#ending.closed;
  }

  /**
   * Publishes a new value while leading. Throws when not leading; a proclaim
   * that the server refuses ends the stream (reported as a loss).
   */
  proclaim(value) {
    if (!this.#leading || !this.#call) throw new Error('proclaim: this candidate does not lead');
    const bytes = toBytes(value);
    this.#call.write({ proclaim: { value: bytes } });
    this.#campaign.value = bytes; // a re-campaign carries the latest value
  }

  /**
   * Resigns (a leader reports 'lost' with reason 'resigned') and ends the
   * candidacy. Resolves once it has ended, however it ended (also after an
   * abort: `closed` is what rejects then).
   */
  async close() {
    if (this.#closing) return this.#ending.settled();
    this.#closing = true;
    this.#redial.stop();
    const call = this.#call;
    // A stream not answered yet (e.g. still waiting for the server to be
    // back) holds no leadership to hand over: cancel it rather than wait.
    if (call && !this.#answered) call.cancel();
    else if (call) {
      await new Promise((resolve) => {
        const fallback = setTimeout(() => { call.cancel(); resolve(); }, 5000);
        call.on('status', () => { clearTimeout(fallback); resolve(); });
        // The server answers a resign with 'lost' (if leading) and ends the stream.
        call.write({ resign: {} });
        call.end();
      });
    }
    this.#call = null;
    this.#loseLeadership('resigned');
    this.#finish();
    return this.#ending.settled();
  }

  #connect() {
    if (this.#closing) return;
    const generation = ++this.#generation;
    const call = this.#client.elect(streamMetadata());
    this.#call = call;
    this.#answered = false;
    call.on('error', () => {}); // handled through 'status'
    call.on('data', (response) => this.#onResponse(generation, response));
    call.on('status', (status) => this.#onStatus(generation, status));
    call.write({ campaign: this.#campaign });
  }

  #onResponse(generation, response) {
    if (generation !== this.#generation) return;
    // Any message while leading renews the lease, not only heartbeats.
    if (this.#leading) this.#armLease(generation);
    this.#answered = true;
    this.#redial.reset();
    switch (response.event) {
      case 'elected': {
        const leader = leaderFromProto(response.elected.leader);
        this.#leading = true;
        this.#leader = leader;
        this.#armLease(generation);
        this.emit('elected', { leader, fencingToken: leader.fencingToken });
        break;
      }
      case 'following': {
        // Never both: a following while leading means leadership is gone.
        this.#loseLeadership('superseded');
        this.#leader = leaderFromProto(response.following.leader);
        this.emit('following', this.#leader);
        break;
      }
      case 'lost': {
        this.#loseLeadership(lossReasonName(response.lost.reason));
        if (!this.#recampaign && !this.#closing) this.#endCandidacy();
        break;
      }
      default: // heartbeat: handled by the lease above
        break;
    }
  }

  #onStatus(generation, status) {
    if (generation !== this.#generation) return;
    this.#call = null;
    if (this.#closing) return; // close() is waiting for this
    const error = streamEndError('elect', status);
    this.#loseLeadership('stream_broken', error);
    this.#leader = null;
    if (streamDecision(status.code) === 'fatal') {
      this.#closing = true;
      this.emit('error', error);
      this.#finish();
    } else if (this.#recampaign) {
      this.#redial.schedule(error);
    } else {
      this.#closing = true;
      this.#finish();
    }
  }

  #armLease(generation) {
    this.#leaseTimer.start(2 * this.#heartbeatIntervalMs, () => {
      if (generation !== this.#generation || !this.#leading) return;
      this.#loseLeadership('lease_expired');
      this.#leader = null;
      // The stream is suspect: drop it (the server, if alive, deletes the
      // candidate node when it sees the cancel) and campaign afresh.
      const call = this.#call;
      this.#generation++;
      this.#call = null;
      call?.cancel();
      if (this.#recampaign && !this.#closing) {
        this.#redial.schedule(silenceError('no heartbeat for 2 intervals while leading'));
      } else {
        this.#closing = true;
        this.#finish();
      }
    });
  }

  #loseLeadership(reason, error) {
    this.#leaseTimer.stop();
    if (!this.#leading) return;
    this.#leading = false;
    this.emit('lost', error ? { reason, error } : { reason });
  }

  #endCandidacy() {
    this.#closing = true;
    const call = this.#call;
    this.#generation++;
    this.#call = null;
    call?.cancel();
    this.#finish();
  }

  #abort(error) {
    if (this.#ending.done) return;
    this.#closing = true;
    const call = this.#call;
    this.#generation++;
    this.#call = null;
    call?.cancel();
    this.#loseLeadership('aborted');
    this.#leader = null;
    this.#finish(error);
  }

  #finish(error) {
    this.#leaseTimer.stop();
    this.#redial.stop();
    if (this.#ending.end(error)) this.emit('close');
  }
}
