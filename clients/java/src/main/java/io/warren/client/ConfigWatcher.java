package io.warren.client;

import io.grpc.Status;
import io.warren.v1.ConfigEntry;
import io.warren.v1.ConfigEvent;
import io.warren.v1.ConfigEventType;
import io.warren.v1.ConfigServiceGrpc;
import io.warren.v1.WatchConfigRequest;
import io.warren.v1.WatchConfigResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Keeps the latest state of a config key, or of every key under a prefix,
 * and reports each change.
 *
 * <p>The first state is reported as one {@link ChangeType#PUT} per existing
 * key. When the stream breaks (a code {@link RetryPolicy#stream} resubscribes
 * on, such as UNAVAILABLE or RESOURCE_EXHAUSTED at the server's watch limit,
 * an unexpected end, or three heartbeat intervals of silence), the watcher
 * watches again after the jittered {@link BackoffPolicy}, wait-for-ready;
 * the other codes (INVALID_ARGUMENT, PERMISSION_DENIED...) stop it and go to
 * {@link Listener#onError}. The new stream's initial state REPLACES what the watcher held, and
 * the differences are reported as changes (PUT for new or modified keys,
 * DELETE for keys that are gone), so a listener never misses the net effect of
 * what happened while it was disconnected. ZooKeeper may coalesce rapid
 * writes: intermediate versions can be skipped, the latest state never is.
 *
 * <p>Changes arrive in order, one at a time, on {@link Options#executor}
 * (default: a thread of the watcher's own). {@link #get()} and
 * {@link #snapshot()} may be called from any thread.
 */
public final class ConfigWatcher implements AutoCloseable {
  /** What happened to a key. */
  public enum ChangeType {
    PUT,
    DELETE
  }

  /**
   * One change: {@code entry} is the new state (for DELETE, the last known
   * one); {@code previous} is what the watcher held before (null if nothing);
   * {@code initial} is true for the PUTs of the watcher's very first state.
   */
  public static final class Change {
    public final ChangeType type;
    public final String key;
    public final ConfigEntry entry;
    public final ConfigEntry previous;
    public final boolean initial;

    Change(ChangeType type, ConfigEntry entry, ConfigEntry previous) {
      this(type, entry, previous, false);
    }

    Change(ChangeType type, ConfigEntry entry, ConfigEntry previous, boolean initial) {
      this.initial = initial;
      this.type = type;
      this.key = entry.getKey();
      this.entry = entry;
      this.previous = previous;
    }

    /** The value as UTF-8 text (empty for a DELETE). */
    public String valueUtf8() {
      return type == ChangeType.DELETE ? "" : entry.getValue().toString(StandardCharsets.UTF_8);
    }

    @Override
    public String toString() {
      return type + " " + key + (type == ChangeType.PUT ? "=" + valueUtf8() + " (v" + entry.getVersion() + ")" : "");
    }
  }

  /** Receives changes in order. */
  public interface Listener {
    void onChange(Change change);

    /** The watch failed for good (not retryable); the watcher stopped. */
    default void onError(Status status) {}
  }

  /** What to watch. */
  public static final class Options extends ListenerOptions<Options> {
    final String key;
    final boolean prefix;
    Duration heartbeatInterval = Duration.ofSeconds(15);

    private Options(String key, boolean prefix) {
      this.key = key;
      this.prefix = prefix;
    }

    /** Watches one key. */
    public static Options key(String key) {
      return new Options(key, false);
    }

    /** Watches a key and everything below it ("" = every key). */
    public static Options prefix(String prefix) {
      return new Options(prefix, true);
    }

    /** The heartbeat interval asked of the server (default 15 s); 3 missed = a dead stream. */
    public Options heartbeatInterval(Duration d) {
      heartbeatInterval = d;
      return this;
    }
  }

  private final Warren warren;
  private final Options options;
  private final Listener listener;
  private final SerialCallbacks events;
  private final StreamRetry retry;
  private final CountDownLatch initial = new CountDownLatch(1);

  // Guarded by `lock`.
  private final Object lock = new Object();
  private TreeMap<String, ConfigEntry> state = new TreeMap<>();
  private Stream stream;
  private boolean closing;
  private Status failedWith;
  private boolean hadInitial;

  ConfigWatcher(Warren warren, Options options, Listener listener) {
    this.warren = warren;
    this.options = options;
    this.listener = listener;
    this.retry = new StreamRetry(warren, options.backoff, lock, this::openLocked);
    this.events = new SerialCallbacks(options.executor, "warren-config");
    synchronized (lock) {
      openLocked();
    }
  }

  /** Waits for the first state; false on timeout. Throws if the watch failed for good. */
  public boolean awaitInitial(Duration timeout) throws InterruptedException {
    boolean ok = initial.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
    synchronized (lock) {
      if (failedWith != null) throw failedWith.asRuntimeException();
    }
    return ok;
  }

  /** The watched key's entry (for a prefix watch: the prefix key itself), if it exists. */
  public Optional<ConfigEntry> get() {
    return get(options.key);
  }

  public Optional<ConfigEntry> get(String key) {
    synchronized (lock) {
      return Optional.ofNullable(state.get(key));
    }
  }

  /** A copy of every known key and its entry, in key order. */
  public SortedMap<String, ConfigEntry> snapshot() {
    synchronized (lock) {
      return Collections.unmodifiableSortedMap(new TreeMap<>(state));
    }
  }

  /**
   * Stops watching and waits (up to 5 s) for the stream to end. Idempotent.
   * An interrupt stops the waiting; the interrupt flag is kept.
   */
  @Override
  public void close() {
    Stream s;
    synchronized (lock) {
      if (closing) return;
      closing = true;
      retry.cancelLocked();
      s = stream;
      stream = null;
    }
    if (s != null) {
      s.cancel("watcher closed");
      try {
        s.ended.await(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    events.shutdownAfterQueued();
  }

  private void openLocked() {
    if (closing) return;
    Stream s = new Stream();
    stream = s;
    WatchConfigRequest.Builder request =
        WatchConfigRequest.newBuilder().setKey(options.key).setPrefix(options.prefix);
    if (options.heartbeatInterval != null) {
      request.setHeartbeatInterval(Protos.duration(options.heartbeatInterval));
      s.watchHeartbeats(warren, options.heartbeatInterval);
    }
    RetryPolicy.forStreams(ConfigServiceGrpc.newStub(warren.channel()))
        .watchConfig(request.build(), s);
  }

  /** Applies a response to `state` and returns the changes to report. */
  private List<Change> applyLocked(WatchConfigResponse response) {
    List<Change> changes = new ArrayList<>();
    if (response.getInitialState()) {
      // Reconcile: the new initial state replaces the old one.
      TreeMap<String, ConfigEntry> next = new TreeMap<>();
      for (ConfigEvent e : response.getEventsList()) {
        if (e.getType() == ConfigEventType.CONFIG_EVENT_TYPE_PUT) next.put(e.getEntry().getKey(), e.getEntry());
      }
      for (Map.Entry<String, ConfigEntry> old : state.entrySet()) {
        if (!next.containsKey(old.getKey())) changes.add(new Change(ChangeType.DELETE, old.getValue(), old.getValue()));
      }
      for (ConfigEntry e : next.values()) {
        ConfigEntry old = state.get(e.getKey());
        if (!e.equals(old)) changes.add(new Change(ChangeType.PUT, e, old, !hadInitial));
      }
      state = next;
      hadInitial = true;
      return changes;
    }
    for (ConfigEvent e : response.getEventsList()) {
      ConfigEntry entry = e.getEntry();
      if (e.getType() == ConfigEventType.CONFIG_EVENT_TYPE_PUT) {
        changes.add(new Change(ChangeType.PUT, entry, state.put(entry.getKey(), entry)));
      } else if (e.getType() == ConfigEventType.CONFIG_EVENT_TYPE_DELETE) {
        ConfigEntry old = state.remove(entry.getKey());
        changes.add(new Change(ChangeType.DELETE, entry, old));
      }
    }
    return changes;
  }

  /** One WatchConfig call; a re-watch makes a new one. */
  private final class Stream extends StreamCall<WatchConfigRequest, WatchConfigResponse> {
    // A large initial state arrives in several responses (the server keeps
    // each under the gRPC message limit): the ones before the one marked
    // initial_state hold PUTs of the same state. gRPC calls onNext one at a
    // time per stream.
    private WatchConfigResponse.Builder initialParts = WatchConfigResponse.newBuilder();

    Stream() {
      super(lock, retry);
    }

    @Override
    public void onNext(WatchConfigResponse response) {
      received();
      if (initialParts != null) {
        initialParts.addAllEvents(response.getEventsList());
        if (!response.getInitialState()) return;
        response = initialParts.setInitialState(true).build();
        initialParts = null;
      }
      if (response.getEventsCount() == 0 && !response.getInitialState()) return; // heartbeat
      synchronized (lock) {
        if (stream != this) return;
        for (Change c : applyLocked(response)) {
          if (!events.run(() -> listener.onChange(c))) break;
        }
      }
      // After the changes are queued, so a waiter sees the initial state.
      if (response.getInitialState()) initial.countDown();
    }

    @Override
    void ended(Status status) {
      synchronized (lock) {
        if (stream != this || closing) return;
        stream = null;
        if (!StreamRetry.resubscribes(status)) {
          closing = true;
          failedWith = status;
          initial.countDown();
          events.run(() -> listener.onError(status));
          events.shutdownAfterQueued(); // close() has nothing left to end
          return;
        }
        retry.scheduleLocked(); // null (nothing scheduled) when the Warren client was closed under us
      }
    }
  }
}
