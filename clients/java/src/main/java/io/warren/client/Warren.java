package io.warren.client;

import com.google.protobuf.ByteString;
import io.grpc.Channel;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.warren.v1.ConfigEntry;
import io.warren.v1.ConfigServiceGrpc;
import io.warren.v1.DeleteConfigRequest;
import io.warren.v1.Delivery;
import io.warren.v1.ElectionServiceGrpc;
import io.warren.v1.Fence;
import io.warren.v1.GetConfigRequest;
import io.warren.v1.LockServiceGrpc;
import io.warren.v1.MessagingServiceGrpc;
import io.warren.v1.PublishRequest;
import io.warren.v1.PutConfigRequest;
import io.warren.v1.TxnCheck;
import io.warren.v1.TxnOp;
import io.warren.v1.TxnRequest;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A connection to a Warren server ({@code warrend}) and the entry point to
 * the wrappers: {@link Publisher}, {@link Subscriber}, {@link Elector},
 * {@link ConfigWatcher}, {@link Locker} and {@link Registration}. The raw gRPC stubs stay available through
 * {@link #channel()} for everything the wrappers do not cover.
 *
 * <p>Thread-safe. Closing it closes the channel; close the wrappers first.
 */
public final class Warren implements AutoCloseable {
  private static final AtomicInteger THREAD_IDS = new AtomicInteger();
  /** The address connectFromEnv uses without WARREN_ADDRESS. */
  public static final String DEFAULT_ADDRESS = "127.0.0.1:50051";

  private final ManagedChannel managed; // null when the caller owns the channel
  private final Channel channel;
  private final ScheduledExecutorService scheduler;
  private final ReconnectCap reconnectCap; // null when the caller owns the channel

  private Warren(ManagedChannel managed, Channel channel) {
    this.managed = managed;
    this.channel = channel;
    // One daemon thread for backoff timers, lease and heartbeat checks: they
    // only flip state and start calls, never block.
    this.scheduler =
        Executors.newSingleThreadScheduledExecutor(
            daemonThreads("warren-timer"));
    if (managed != null) {
      reconnectCap = new ReconnectCap(managed, scheduler);
      reconnectCap.start();
    } else {
      reconnectCap = null;
    }
  }

  /**
   * Connects (lazily, on the first call) to {@code target}, e.g.
   * {@code "127.0.0.1:50051"}, in plaintext.
   *
   * <p>The channel waits at most {@link RetryPolicy#MAX_RECONNECT_BACKOFF}
   * (2 s) between connection attempts, instead of gRPC's 120 s, so the
   * wrappers are back within seconds of a server that was down for long.
   */
  public static Warren connect(String target, ClientInterceptor... interceptors) {
    return connect(target, new Security(), interceptors);
  }

  /**
   * Connects (lazily) to {@code target} with TLS, a client certificate and a
   * bearer token as {@code security} says.
   *
   * @throws IllegalArgumentException naming a TLS file that cannot be read
   */
  public static Warren connect(
      String target, Security security, ClientInterceptor... interceptors) {
    NettyChannelBuilder builder =
        NettyChannelBuilder.forTarget(target, security.channelCredentials())
            // Debian's grpc-core parses JSON service configs with Gson, which
            // it does not depend on; Warren needs no service config.
            .disableServiceConfigLookUp();
    if (security.serverName() != null) builder.overrideAuthority(security.serverName());
    ManagedChannel ch = builder.build();
    return new Warren(ch, ClientInterceptors.intercept(ch, interceptors));
  }

  /**
   * Connects like the C++ client's MakeChannelFromEnv and the CLI: to
   * WARREN_ADDRESS (else 127.0.0.1:50051) with {@link Security#fromEnv}
   * (WARREN_TOKEN, WARREN_TLS_*).
   */
  public static Warren connectFromEnv(ClientInterceptor... interceptors) {
    return connectFromEnv(System.getenv(), interceptors);
  }

  /** {@link #connectFromEnv()} reading {@code env} instead of the process's. */
  public static Warren connectFromEnv(
      java.util.Map<String, String> env, ClientInterceptor... interceptors) {
    String address = env.getOrDefault("WARREN_ADDRESS", "");
    return connect(
        address.isEmpty() ? DEFAULT_ADDRESS : address, Security.fromEnv(env), interceptors);
  }

  /**
   * Wraps a channel the caller owns (TLS, credentials...); close() leaves it
   * open. Its reconnect backoff stays the caller's: gRPC's default grows to
   * 120 s (see {@link #connect(String, Security, ClientInterceptor...)} for
   * the capped one). A retried stream still resets its backoff when it is a
   * {@link ManagedChannel}.
   */
  public static Warren using(Channel channel) {
    return new Warren(null, channel);
  }

  /** The channel, for the generated stubs ({@code io.warren.v1.*Grpc}). */
  public Channel channel() {
    return channel;
  }

  ScheduledExecutorService scheduler() {
    return scheduler;
  }

  /** The reconnect backoff cap of a channel this client built (null for {@link #using}). */
  ReconnectCap reconnectCap() {
    return reconnectCap;
  }

  /** For a stream the wrappers retry: a channel that waits to reconnect tries at once. */
  void resetConnectBackoff() {
    if (reconnectCap != null) {
      reconnectCap.reset();
    } else if (channel instanceof ManagedChannel) {
      ((ManagedChannel) channel).resetConnectBackoff();
    }
  }

  /** A publisher with the default retry policy. */
  public Publisher publisher() {
    return new Publisher(this, new Publisher.Options());
  }

  public Publisher publisher(Publisher.Options options) {
    return new Publisher(this, options);
  }

  /** Starts a subscription; see {@link Subscriber}. */
  public Subscriber subscribe(Subscriber.Options options, Subscriber.Handler handler) {
    return new Subscriber(this, options, handler);
  }

  /**
   * Starts answering requests: a subscription (a queue, or a topic with a
   * group) whose handler returns each reply; see {@link Responder}.
   */
  public Responder respond(Subscriber.Options options, Responder.Handler handler) {
    return new Responder(this, options, handler);
  }

  /**
   * Request/reply: publishes {@code request} (as a publish: exchange, routing
   * key, payload, headers...; {@code reply_to}, {@code correlation_id} and
   * {@code delay} must be unset) and waits for the first reply, a responder's
   * answer ({@link Responder}, or {@link Publisher#reply}). Never retried, as
   * the request may have been handled.
   *
   * @param timeout how long to wait for the reply; null: the server's call
   *     timeout (30 s by default)
   * @throws TimeoutException no reply within the timeout
   * @throws io.grpc.StatusRuntimeException FAILED_PRECONDITION: a mandatory
   *     request that no queue received; UNAVAILABLE: the request may have been
   *     handled but no reply can arrive; INVALID_ARGUMENT, PERMISSION_DENIED...
   */
  public Delivery call(PublishRequest request, Duration timeout)
      throws TimeoutException, InterruptedException {
    CompletableFuture<Delivery> reply = callAsync(request, timeout);
    try {
      return reply.get();
    } catch (InterruptedException e) {
      reply.cancel(true);
      throw e;
    } catch (ExecutionException e) {
      if (e.getCause() instanceof TimeoutException) {
        TimeoutException timedOut = new TimeoutException(e.getCause().getMessage());
        timedOut.initCause(e.getCause());
        throw timedOut;
      }
      if (e.getCause() instanceof RuntimeException) throw (RuntimeException) e.getCause();
      throw new IllegalStateException(e.getCause());
    }
  }

  /** {@link #call(PublishRequest, Duration)} of {@code payload} to a queue (mandatory). */
  public Delivery call(String queue, byte[] payload, Duration timeout)
      throws TimeoutException, InterruptedException {
    return call(
        PublishRequest.newBuilder()
            .setRoutingKey(queue)
            .setPayload(ByteString.copyFrom(payload))
            .setMandatory(true)
            .build(),
        timeout);
  }

  /**
   * {@link #call(PublishRequest, Duration)} without blocking: the future
   * fails with {@link TimeoutException} or the call's
   * {@link io.grpc.StatusRuntimeException}; cancelling it cancels the call.
   */
  public CompletableFuture<Delivery> callAsync(PublishRequest request, Duration timeout) {
    return Calls.call(this, request, timeout);
  }

  /** Starts a candidacy; see {@link Elector}. */
  public Elector elect(Elector.Options options, Elector.Listener listener) {
    return new Elector(this, options, listener);
  }

  /** Starts watching a key or a prefix; see {@link ConfigWatcher}. */
  public ConfigWatcher watchConfig(
      ConfigWatcher.Options options, ConfigWatcher.Listener listener) {
    return new ConfigWatcher(this, options, listener);
  }

  /** Takes locks and semaphores; see {@link Locker}. */
  public Locker locker() {
    return new Locker(this, new Locker.Options());
  }

  public Locker locker(Locker.Options options) {
    return new Locker(this, options);
  }

  /** Holds a key while the registration is open; see {@link Registration}. */
  public Registration holdKey(Registration.Options options, Registration.Listener listener) {
    return new Registration(this, options, listener);
  }

  /** Reads a key; empty when it does not exist. Other errors throw. */
  public Optional<ConfigEntry> getConfig(String key) {
    try {
      return Optional.of(
          unary()
              .getConfig(GetConfigRequest.newBuilder().setKey(key).build())
              .getEntry());
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() == Status.Code.NOT_FOUND) return Optional.empty();
      throw e;
    }
  }

  /** Writes a key unconditionally (creating it and its parents). */
  public ConfigEntry putConfig(String key, String value) {
    return putConfig(key, value.getBytes(StandardCharsets.UTF_8));
  }

  public ConfigEntry putConfig(String key, byte[] value) {
    return putConfig(key, value, null);
  }

  /**
   * Writes a key if {@code fence} still holds, checked atomically with the
   * write (null: unconditionally); a fence that no longer holds throws
   * FAILED_PRECONDITION ({@code fence: ...}) and nothing is written. See
   * {@link Fences}.
   */
  public ConfigEntry putConfig(String key, byte[] value, Fence fence) {
    PutConfigRequest.Builder request =
        PutConfigRequest.newBuilder().setKey(key).setValue(ByteString.copyFrom(value));
    if (fence != null) request.setFence(fence);
    return unary().putConfig(request.build()).getEntry();
  }

  public ConfigEntry putConfig(String key, String value, Fence fence) {
    return putConfig(key, value.getBytes(StandardCharsets.UTF_8), fence);
  }

  /**
   * Deletes a key (one with children becomes a namespace node, its children
   * stay). NOT_FOUND throws.
   */
  public void deleteConfig(String key) {
    deleteConfig(key, null);
  }

  /** Deletes a key if {@code fence} still holds, atomically (null: unconditionally). */
  public void deleteConfig(String key, Fence fence) {
    DeleteConfigRequest.Builder request = DeleteConfigRequest.newBuilder().setKey(key);
    if (fence != null) request.setFence(fence);
    unary().deleteConfig(request.build());
  }

  /**
   * Applies {@code ops} if every check passes and {@code fence} (null: none)
   * holds, all or nothing, and returns the new entry of each put in op order.
   * {@link Txn} makes the checks and ops. A failing check or op throws
   * FAILED_PRECONDITION naming it ({@code checks[i]: ...}, {@code ops[i]: ...})
   * and nothing changes.
   */
  public List<ConfigEntry> txn(List<TxnCheck> checks, List<TxnOp> ops, Fence fence) {
    TxnRequest.Builder request = TxnRequest.newBuilder().addAllChecks(checks).addAllOps(ops);
    if (fence != null) request.setFence(fence);
    return unary().txn(request.build()).getEntriesList();
  }

  private ConfigServiceGrpc.ConfigServiceBlockingStub unary() {
    return ConfigServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
  }

  /** The raw stubs, for what the wrappers leave out. */
  public MessagingServiceGrpc.MessagingServiceBlockingStub messaging() {
    return MessagingServiceGrpc.newBlockingStub(channel);
  }

  public ElectionServiceGrpc.ElectionServiceBlockingStub election() {
    return ElectionServiceGrpc.newBlockingStub(channel);
  }

  public ConfigServiceGrpc.ConfigServiceBlockingStub config() {
    return ConfigServiceGrpc.newBlockingStub(channel);
  }

  public LockServiceGrpc.LockServiceBlockingStub lock() {
    return LockServiceGrpc.newBlockingStub(channel);
  }

  @Override
  public void close() {
    scheduler.shutdownNow();
    if (managed != null) {
      managed.shutdown();
      try {
        if (!managed.awaitTermination(5, TimeUnit.SECONDS)) managed.shutdownNow();
      } catch (InterruptedException e) {
        managed.shutdownNow();
        Thread.currentThread().interrupt();
      }
    }
  }

  static java.util.concurrent.ThreadFactory daemonThreads(String prefix) {
    return r -> {
      Thread t = new Thread(r, prefix + "-" + THREAD_IDS.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }
}
