package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import io.grpc.Status;
import io.warren.v1.Delivery;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.Test;

/** Publisher and Subscriber against the live server in WARREN_ADDRESS. */
public class MessagingTest extends LiveServerTest {
  private static String text(Delivery d) {
    return d.getPayload().toString(StandardCharsets.UTF_8);
  }

  @Test
  public void receivesEveryPublishedMessageWithinMaxInFlight() throws Exception {
    String queue = unique("java-many");
    Map<String, String> received = new ConcurrentHashMap<>(); // payload -> message id
    AtomicInteger running = new AtomicInteger();
    AtomicInteger maxRunning = new AtomicInteger();
    try (Subscriber sub =
        warren.subscribe(
            Subscriber.Options.queue(queue).maxInFlight(4),
            d -> {
              int now = running.incrementAndGet();
              maxRunning.accumulateAndGet(now, Math::max);
              Thread.sleep(10); // some work, so that handlers overlap
              received.put(text(d), d.getMessageId());
              running.decrementAndGet();
            })) {
      sub.awaitSubscribed(WAIT);
      Publisher pub = warren.publisher();
      Map<String, CompletableFuture<String>> sent = new java.util.HashMap<>();
      for (int i = 0; i < 40; i++) {
        String body = "message-" + i;
        sent.put(body, pub.publishToQueue(queue, body.getBytes(StandardCharsets.UTF_8)));
      }
      await("all 40 messages", WAIT, () -> received.size() == 40);
      assertEquals(sent.keySet(), received.keySet());
      for (Map.Entry<String, CompletableFuture<String>> e : sent.entrySet()) {
        assertEquals("message id of " + e.getKey(), e.getValue().get(), received.get(e.getKey()));
      }
      assertTrue("at most 4 handlers at once, saw " + maxRunning.get(), maxRunning.get() <= 4);
    }
  }

  @Test
  public void failingHandlerNacksAndTheMessageComesBack() throws Exception {
    String queue = unique("java-nack");
    List<Delivery> seen = new CopyOnWriteArrayList<>();
    try (Subscriber sub =
        warren.subscribe(
            Subscriber.Options.queue(queue),
            d -> {
              seen.add(d);
              if (seen.size() == 1) throw new IllegalStateException("first attempt fails");
            })) {
      sub.awaitSubscribed(WAIT);
      warren.publisher().publishToQueue(queue, "retry me".getBytes(StandardCharsets.UTF_8)).get();
      await("the redelivery", WAIT, () -> seen.size() >= 2);
      assertEquals(text(seen.get(0)), text(seen.get(1)));
      assertEquals(seen.get(0).getMessageId(), seen.get(1).getMessageId());
      assertFalse(seen.get(0).getRedelivered());
      assertTrue("second delivery is flagged redelivered", seen.get(1).getRedelivered());
    }
  }

  @Test
  public void closeWaitsForTheRunningHandlerAndAcksIt() throws Exception {
    String queue = unique("java-close");
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    Subscriber sub =
        warren.subscribe(
            Subscriber.Options.queue(queue),
            d -> {
              started.countDown();
              release.await();
            });
    sub.awaitSubscribed(WAIT);
    warren.publisher().publishToQueue(queue, "A".getBytes(StandardCharsets.UTF_8)).get();
    assertTrue("handler started", started.await(20, TimeUnit.SECONDS));
    CompletableFuture<Void> closed = CompletableFuture.runAsync(sub::close);
    // close() must not return while the handler runs.
    assertFalse("close returned before the handler ended", waitDone(closed, 300));
    release.countDown();
    closed.get(20, TimeUnit.SECONDS);

    // A was acked: a new subscriber sees B first, and never A.
    List<String> next = new CopyOnWriteArrayList<>();
    try (Subscriber again = warren.subscribe(Subscriber.Options.queue(queue), d -> next.add(text(d)))) {
      again.awaitSubscribed(WAIT);
      warren.publisher().publishToQueue(queue, "B".getBytes(StandardCharsets.UTF_8)).get();
      await("B", WAIT, () -> !next.isEmpty());
      assertEquals("B", next.get(0));
    }
  }

  @Test
  public void anInterruptedCloseStopsWaitingAndKeepsTheFlag() throws Exception {
    String queue = unique("java-interrupt");
    CountDownLatch started = new CountDownLatch(1);
    CountDownLatch release = new CountDownLatch(1);
    Subscriber sub =
        warren.subscribe(
            Subscriber.Options.queue(queue),
            d -> {
              started.countDown();
              release.await();
            });
    try {
      sub.awaitSubscribed(WAIT);
      warren.publisher().publishToQueue(queue, "A".getBytes(StandardCharsets.UTF_8)).get();
      assertTrue("handler started", started.await(20, TimeUnit.SECONDS));
      long t0 = System.nanoTime();
      Thread.currentThread().interrupt();
      sub.close(); // would wait up to closeTimeout (30 s) for the handler
      boolean kept = Thread.interrupted();
      long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertTrue("the interrupt flag is kept", kept);
      assertTrue("close stopped waiting for the handler, took " + tookMs + " ms", tookMs < 5000);
    } finally {
      release.countDown();
    }
    // The unsettled delivery went back to the queue.
    List<String> next = new CopyOnWriteArrayList<>();
    try (Subscriber again = warren.subscribe(Subscriber.Options.queue(queue), d -> next.add(text(d)))) {
      await("A again", WAIT, () -> next.contains("A"));
      assertTrue(again.awaitSubscribed(WAIT).equals(queue));
    }
  }

  private static boolean waitDone(CompletableFuture<?> f, long millis) {
    try {
      f.get(millis, TimeUnit.MILLISECONDS);
      return true;
    } catch (Exception e) {
      return false;
    }
  }

  @Test
  public void publishToAMissingExchangeFailsAtOnce() throws Exception {
    long t0 = System.nanoTime();
    try {
      warren.publisher().publish(unique("java-no-such-exchange"), "k", new byte[] {1}).get();
      fail("publish to a missing exchange succeeded");
    } catch (ExecutionException e) {
      assertEquals(Status.Code.NOT_FOUND, Status.fromThrowable(e.getCause()).getCode());
    }
    assertTrue("no retries for NOT_FOUND", System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
  }

  @Test
  public void anUnroutableMessageFailsUnlessTheCallerOptsOut() throws Exception {
    String nowhere = unique("java-no-such-queue"); // no queue is bound to this routing key
    try {
      warren.publisher().publishToQueue(nowhere, new byte[] {1}).get(20, TimeUnit.SECONDS);
      fail("an unroutable mandatory publish succeeded");
    } catch (ExecutionException e) {
      assertEquals(Status.Code.FAILED_PRECONDITION, Status.fromThrowable(e.getCause()).getCode());
    }
    // Opted out: the broker drops it and the publish succeeds.
    String id = warren.publisher(new Publisher.Options().mandatory(false))
        .publishToQueue(nowhere, new byte[] {2})
        .get(20, TimeUnit.SECONDS);
    assertFalse(id.isEmpty());
  }

  @Test
  public void subscribingWithInvalidOptionsFailsForGood() throws Exception {
    Set<Status.Code> failed = new HashSet<>();
    try (Subscriber sub =
        warren.subscribe(
            Subscriber.Options.queue(""), // no queue name: INVALID_ARGUMENT
            d -> {})) {
      try {
        sub.awaitSubscribed(WAIT);
        fail("subscribed without a queue name");
      } catch (io.grpc.StatusRuntimeException e) {
        failed.add(e.getStatus().getCode());
      }
    }
    assertEquals(new HashSet<>(List.of(Status.Code.INVALID_ARGUMENT)), failed);
  }
}
