package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.warren.v1.Delivery;
import io.warren.v1.PublishRequest;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.Test;

/**
 * What breaks and what must still hold: each test runs a warrend of its own
 * and stops (SIGTERM), restarts (same port) or freezes (SIGSTOP) it.
 */
public class FaultTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  /** Records the message id of every Publish attempt that leaves the client. */
  static final class PublishIds implements ClientInterceptor {
    final List<String> ids = new CopyOnWriteArrayList<>();

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      return new ForwardingClientCall.SimpleForwardingClientCall<Q, R>(next.newCall(method, options)) {
        @Override
        public void sendMessage(Q message) {
          if (message instanceof PublishRequest) ids.add(((PublishRequest) message).getMessageId());
          super.sendMessage(message);
        }
      };
    }
  }

  /**
   * Breaks: warrend is stopped (SIGTERM) and restarted on the same port.
   * Holds: the elector reports the loss at once and campaigns again; the
   * subscriber resubscribes and gets messages again; a publish made while the
   * server is down is retried with the same message id until it succeeds; the
   * watcher re-watches and reports a change made while it was disconnected.
   */
  @Test
  public void serverRestart() throws Exception {
    PublishIds attempts = new PublishIds();
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("restart"));
        Warren warren = Warren.connect(server.address(), attempts)) {
      // A second warrend of the same cluster writes config while `server` is down.
      try (TestSupport.Warrend writer = server.sameRoot();
          Warren writerClient = Warren.connect(writer.address())) {
        String queue = unique("java-restart");
        String key = unique("java-restart") + "/flag";
        writerClient.putConfig(key, "before");

        List<Delivery> received = new CopyOnWriteArrayList<>();
        AtomicInteger subscribed = new AtomicInteger();
        AtomicInteger broken = new AtomicInteger();
        ElectorTest.Recorder events = new ElectorTest.Recorder();
        List<ConfigWatcher.Change> changes = new CopyOnWriteArrayList<>();
        try (Subscriber sub = warren.subscribe(
                Subscriber.Options.queue(queue).backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500)))
                    .listener(new Subscriber.Listener() {
                      @Override
                      public void onSubscribed(String q) {
                        subscribed.incrementAndGet();
                      }

                      @Override
                      public void onStreamBroken(Status status, Duration retryIn) {
                        broken.incrementAndGet();
                      }
                    }),
                received::add);
            Elector elector = warren.elect(
                new Elector.Options(unique("java-restart")).heartbeatInterval(Duration.ofMillis(500))
                    .backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500))),
                events);
            ConfigWatcher watcher = warren.watchConfig(
                ConfigWatcher.Options.key(key).backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500))),
                changes::add)) {
          sub.awaitSubscribed(WAIT);
          assertTrue(watcher.awaitInitial(WAIT));
          await("elected", WAIT, elector::isLeader);
          Publisher publisher = warren.publisher(new Publisher.Options().retryTimeout(Duration.ofSeconds(60))
              .backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500))));
          String first = publisher.publishToQueue(queue, "before".getBytes(StandardCharsets.UTF_8)).get(20, TimeUnit.SECONDS);
          await("the first message", WAIT, () -> received.size() == 1);
          assertEquals(first, received.get(0).getMessageId());

          server.stop();
          await("the elector reports STREAM_BROKEN", WAIT,
              () -> events.lost.contains(Elector.LossReason.STREAM_BROKEN));
          assertFalse(elector.isLeader());
          await("the subscriber sees the broken stream", WAIT, () -> broken.get() >= 1);

          // While the server is down: a publish keeps retrying, a config change happens elsewhere.
          int before = attempts.ids.size();
          CompletableFuture<String> during =
              publisher.publishToQueue(queue, "during".getBytes(StandardCharsets.UTF_8));
          await("at least two failed attempts", WAIT, () -> attempts.ids.size() >= before + 2);
          assertFalse(during.isDone());
          writerClient.putConfig(key, "while-down");

          server.restart();
          String duringId = during.get(30, TimeUnit.SECONDS);
          List<String> tried = attempts.ids.subList(before, attempts.ids.size());
          for (String id : tried) assertEquals("every attempt carries the same message id", duringId, id);

          await("the resubscribed stream delivers the message", WAIT,
              () -> received.stream().anyMatch(d -> d.getMessageId().equals(duringId)));
          assertTrue("resubscribed", subscribed.get() >= 2);
          Delivery second = received.stream().filter(d -> d.getMessageId().equals(duringId)).findFirst().get();
          assertEquals("during", second.getPayload().toString(StandardCharsets.UTF_8));
          // At least once: the first message may come again (its ack can go down with the
          // server it was sent to), but nothing else does.
          for (Delivery d : received) {
            assertTrue("only the two messages published: " + d.getMessageId(),
                d.getMessageId().equals(first) || d.getMessageId().equals(duringId));
          }

          await("re-elected after the restart", WAIT, () -> events.elected.size() >= 2 && elector.isLeader());
          await("the watcher reconciles the change made while down", WAIT,
              () -> watcher.get().map(e -> e.getValue().toStringUtf8()).orElse("").equals("while-down"));
          ConfigWatcher.Change last = changes.get(changes.size() - 1);
          assertEquals(ConfigWatcher.ChangeType.PUT, last.type);
          assertEquals("before", last.previous.getValue().toStringUtf8());
        }
      }
    }
  }

  /**
   * Breaks: warrend is frozen (SIGSTOP) while the elector leads, so the
   * stream stays open but silent. Holds: the elector steps down by itself
   * within about two heartbeat intervals (LEASE_EXPIRED), and campaigns
   * again once the server runs again (SIGCONT).
   */
  @Test
  public void leaseExpiresWhenTheServerFreezes() throws Exception {
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("freeze"));
        Warren warren = Warren.connect(server.address())) {
      ElectorTest.Recorder events = new ElectorTest.Recorder();
      Duration interval = Duration.ofMillis(300);
      try (Elector elector = warren.elect(
          new Elector.Options(unique("java-lease")).heartbeatInterval(interval)
              .backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500))),
          events)) {
        await("elected", WAIT, elector::isLeader);
        server.signal("STOP");
        long frozenAt = System.nanoTime();
        try {
          await("LEASE_EXPIRED", Duration.ofSeconds(5), () -> !elector.isLeader());
          long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - frozenAt);
          await("the lost event", Duration.ofSeconds(5), () -> !events.lost.isEmpty());
          assertEquals(List.of(Elector.LossReason.LEASE_EXPIRED), events.lost);
          assertTrue("stepped down within ~2 intervals, took " + tookMs + " ms", tookMs < 2000);
        } finally {
          server.signal("CONT");
        }
        await("re-elected after the server thawed", WAIT, () -> events.elected.size() >= 2 && elector.isLeader());
      }
    }
  }

  /**
   * Breaks: the elector asks for a 10 s interval, more than a server with a
   * 4 s ZooKeeper session allows (it caps at 4/3 s), then the server freezes.
   * Holds: the lease follows the capped interval, so the elector steps down
   * within about 2.7 s, before the session (4 s) could expire and a successor
   * be elected — not after 20 s.
   */
  @Test
  public void leaseFollowsTheServersCappedInterval() throws Exception {
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("cap"));
        Warren warren = Warren.connect(server.address())) {
      ElectorTest.Recorder events = new ElectorTest.Recorder();
      try (Elector elector = warren.elect(
          new Elector.Options(unique("java-cap")).heartbeatInterval(Duration.ofSeconds(10)).recampaign(false),
          events)) {
        await("elected", WAIT, elector::isLeader);
        // From Elected.heartbeat_interval, or learned from two heartbeats (older servers).
        await("the capped interval in force", Duration.ofSeconds(10),
            () -> elector.leaseInterval().compareTo(Duration.ofMillis(1500)) < 0);
        server.signal("STOP");
        long frozenAt = System.nanoTime();
        try {
          await("LEASE_EXPIRED", Duration.ofSeconds(10), () -> !elector.isLeader());
          long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - frozenAt);
          assertTrue("stepped down before the 4 s session could expire, took " + tookMs + " ms", tookMs < 4000);
        } finally {
          server.signal("CONT");
        }
        await("the lost event", Duration.ofSeconds(5), () -> !events.lost.isEmpty());
        assertEquals(Elector.LossReason.LEASE_EXPIRED, events.lost.get(0));
      }
    }
  }
}
