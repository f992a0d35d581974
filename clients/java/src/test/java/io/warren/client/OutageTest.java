package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static io.warren.client.TestSupport.utf8;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.Test;

/**
 * Reconnect after a long outage: warrend is killed (SIGKILL) under a
 * Subscriber, a ConfigWatcher, an Elector and a Publisher, all with their
 * defaults, stays down for WARREN_OUTAGE_SECONDS (default 40, longer than
 * gRPC's own reconnect backoff would let a client come back promptly), and
 * returns on the same port. Each wrapper must work again within 5 s of its
 * return.
 */
public class OutageTest {
  private static final Duration WAIT = Duration.ofSeconds(20);
  private static final Duration RECOVERY = Duration.ofSeconds(5);

  private static int outageSeconds() {
    String s = System.getenv("WARREN_OUTAGE_SECONDS");
    return s == null || s.isEmpty() ? 40 : Integer.parseInt(s);
  }

  @Test
  public void everyWrapperIsBackWithinFiveSecondsOfTheServersReturn() throws Exception {
    String queue = unique("java-outage");
    String key = unique("java-outage") + "/flag";
    List<String> received = new CopyOnWriteArrayList<>();
    ElectorTest.Recorder events = new ElectorTest.Recorder();
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("outage"));
        Warren warren = Warren.connect(server.address());
        Subscriber sub = warren.subscribe(Subscriber.Options.queue(queue),
            d -> received.add(d.getPayload().toStringUtf8()));
        ConfigWatcher watcher = warren.watchConfig(ConfigWatcher.Options.key(key), change -> {});
        Elector elector = warren.elect(new Elector.Options(unique("java-outage")), events)) {
      Publisher publisher = warren.publisher();
      warren.putConfig(key, "before");
      sub.awaitSubscribed(WAIT);
      publisher.publishToQueue(queue, utf8("before")).get(20, TimeUnit.SECONDS);
      await("the message sent before", WAIT, () -> received.contains("before"));
      assertTrue(watcher.awaitInitial(WAIT));
      await("the watcher sees the value before", WAIT, () -> value(watcher).equals("before"));
      await("elected", WAIT, elector::isLeader);

      server.kill();
      long downAt = System.nanoTime();
      await("the elector steps down", WAIT, () -> !elector.isLeader());
      // The outage itself, not a synchronisation: the server stays down this long.
      long left = downAt + TimeUnit.SECONDS.toNanos(outageSeconds()) - System.nanoTime();
      if (left > 0) TimeUnit.NANOSECONDS.sleep(left);

      server.restart(); // same port; returns once it serves
      long backAt = System.nanoTime();
      CompletableFuture<String> published = publisher.publishToQueue(queue, utf8("after"));
      try (Warren writer = Warren.connect(server.address())) {
        writer.putConfig(key, "after");
      }

      Map<String, BooleanSupplier> checks = new LinkedHashMap<>();
      checks.put("publisher", () -> published.isDone() && !published.isCompletedExceptionally());
      checks.put("subscriber", () -> received.contains("after"));
      checks.put("watcher", () -> value(watcher).equals("after"));
      checks.put("elector", elector::isLeader);
      Map<String, Long> recoveredMs = new LinkedHashMap<>();
      long deadline = backAt + RECOVERY.toNanos();
      while (recoveredMs.size() < checks.size() && System.nanoTime() < deadline && !failed(published)) {
        for (Map.Entry<String, BooleanSupplier> check : checks.entrySet()) {
          if (!recoveredMs.containsKey(check.getKey()) && check.getValue().getAsBoolean()) {
            recoveredMs.put(check.getKey(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - backAt));
          }
        }
        Thread.sleep(10);
      }
      System.out.printf("  outage %d s; back after the server's return (ms): %s%n", outageSeconds(), recoveredMs);
      if (failed(published)) published.get(); // throws the publish's error
      List<String> late = new ArrayList<>(checks.keySet());
      late.removeAll(recoveredMs.keySet());
      if (!late.isEmpty()) fail("not back within " + RECOVERY + " of the server's return: " + late);
      assertTrue("elected again, not still leading", events.elected.size() >= 2);
    }
  }

  private static boolean failed(CompletableFuture<?> f) {
    return f.isCompletedExceptionally();
  }

  private static String value(ConfigWatcher watcher) {
    return watcher.get().map(e -> e.getValue().toStringUtf8()).orElse("");
  }
}
