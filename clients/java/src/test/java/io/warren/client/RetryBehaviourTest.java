package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.warren.v1.Leader;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.Test;

/**
 * The retry rule at work against a real server: a stream refused at a limit
 * (RESOURCE_EXHAUSTED) is opened again until a slot frees up; a stream
 * refused for its request (INVALID_ARGUMENT) stops at once and reports it.
 */
public class RetryBehaviourTest {
  private static final Duration WAIT = Duration.ofSeconds(20);

  /** Collects the errors a watcher or an elector reports. */
  static final class Errors implements ConfigWatcher.Listener, Elector.Listener {
    final List<Status> statuses = new CopyOnWriteArrayList<>();

    @Override
    public void onChange(ConfigWatcher.Change change) {}

    @Override
    public void onError(Status status) {
      statuses.add(status);
    }
  }

  @Test
  public void streamsAtTheServersLimitAreRetriedUntilASlotFrees() throws Exception {
    TestSupport.CallLog calls = new TestSupport.CallLog();
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("limits"),
            "--max_watches_per_client=1", "--max_candidates_per_client=1");
        Warren warren = Warren.connect(server.address(), calls)) {
      String key = unique("java-limit") + "/k";
      warren.putConfig(key, "v");
      String election = unique("java-limit");
      Errors errors = new Errors();
      // Not try-with-resources: the test closes them halfway (close is idempotent).
      ConfigWatcher first = warren.watchConfig(ConfigWatcher.Options.key(key), errors);
      Elector leader = warren.elect(new Elector.Options(election), errors);
      try {
        assertTrue(first.awaitInitial(WAIT));
        await("the first candidate leads", WAIT, leader::isLeader);
        // Both slots of this client are taken: the second ones are refused...
        try (ConfigWatcher second = warren.watchConfig(ConfigWatcher.Options.key(key), errors);
            Elector waiting = warren.elect(new Elector.Options(election), errors)) {
          await("two refusals of each", WAIT,
              () -> calls.count("WatchConfig", Status.Code.RESOURCE_EXHAUSTED) >= 2
                  && calls.count("Elect", Status.Code.RESOURCE_EXHAUSTED) >= 2);
          assertFalse(second.awaitInitial(Duration.ZERO));
          assertFalse(waiting.isLeader());
          // ...and keep trying, so they get in once the first ones leave.
          first.close();
          leader.close();
          assertTrue("the second watch got the slot", second.awaitInitial(WAIT));
          assertEquals("v", second.get().orElseThrow().getValue().toStringUtf8());
          await("the second candidate leads", WAIT, waiting::isLeader);
          Leader now = waiting.leader();
          assertEquals(waiting.candidateId(), now.getCandidateId());
          assertEquals("RESOURCE_EXHAUSTED is not an error to report", List.of(), errors.statuses);
        }
      } finally {
        first.close();
        leader.close();
      }
    }
  }

  @Test
  public void aPublishTheCallerCancelledIsNotRetried() throws Exception {
    TestSupport.CallLog calls = new TestSupport.CallLog();
    // Nothing listens on port 1: every attempt fails with UNAVAILABLE, a retried code.
    try (Warren warren = Warren.connect("127.0.0.1:1", calls)) {
      // Waits of 25-50 ms, so that a retry after the cancel could not hide.
      Publisher publisher = warren.publisher(new Publisher.Options()
          .backoff(new BackoffPolicy(Duration.ofMillis(50), 1.0, Duration.ofMillis(50))));
      CompletableFuture<String> publish = publisher.publishToQueue("nowhere", new byte[] {1});
      await("two failed attempts", WAIT, () -> calls.count("Publish", Status.Code.UNAVAILABLE) >= 2);
      assertFalse(publish.isDone());
      assertTrue(publish.cancel(true));
      long attempts = calls.count("Publish");
      // Not a synchronisation: a window of ten retry waits in which a retry
      // would show up.
      Thread.sleep(500);
      assertTrue("at most the attempt in flight ends after the cancel",
          calls.count("Publish") <= attempts + 1);
    }
  }

  @Test
  public void streamsRefusedForTheirRequestStopAtOnce() throws Exception {
    TestSupport.CallLog calls = new TestSupport.CallLog();
    try (Warren warren = Warren.connect(TestSupport.address(), calls)) {
      Errors watchErrors = new Errors();
      Errors electErrors = new Errors();
      try (ConfigWatcher watcher =
              warren.watchConfig(ConfigWatcher.Options.key("not a valid key!"), watchErrors);
          Elector elector = warren.elect(new Elector.Options("not a valid election!"), electErrors)) {
        StatusRuntimeException refused =
            assertThrows(StatusRuntimeException.class, () -> watcher.awaitInitial(WAIT));
        assertEquals(Status.Code.INVALID_ARGUMENT, refused.getStatus().getCode());
        await("the watcher's error", WAIT, () -> !watchErrors.statuses.isEmpty());
        await("the elector's error", WAIT, () -> !electErrors.statuses.isEmpty());
        assertEquals(Status.Code.INVALID_ARGUMENT, watchErrors.statuses.get(0).getCode());
        assertEquals(Status.Code.INVALID_ARGUMENT, electErrors.statuses.get(0).getCode());
        // Not a synchronisation: a window five times the longest first retry
        // wait (100 ms) in which a wrongly retried stream would show up.
        Thread.sleep(500);
        assertEquals("one WatchConfig call, not retried", 1, calls.count("WatchConfig"));
        assertEquals("one Elect call, not retried", 1, calls.count("Elect"));
        assertEquals(1, watchErrors.statuses.size());
        assertEquals(1, electErrors.statuses.size());
        assertFalse(elector.isLeader());
        // Stopped for good: their callback threads end without close().
        await("no callback thread left", WAIT, () -> !TestSupport.threadsNamed("warren-config")
            && !TestSupport.threadsNamed("warren-elector"));
      }
    }
  }

  @Test
  public void locksAndRegistrationsRefusedForTheirRequestStopAtOnce() throws Exception {
    TestSupport.CallLog calls = new TestSupport.CallLog();
    try (Warren warren = Warren.connect(TestSupport.address(), calls)) {
      StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
          () -> warren.locker().acquire("not a valid lock!", 1, WAIT));
      assertEquals(Status.Code.INVALID_ARGUMENT, refused.getStatus().getCode());
      RegistrationTest.Recorder events = new RegistrationTest.Recorder();
      try (Registration reg = warren.holdKey(
          new Registration.Options("not a valid key!", new byte[0]), events)) {
        refused = assertThrows(StatusRuntimeException.class, () -> reg.awaitHeld(WAIT));
        assertEquals(Status.Code.INVALID_ARGUMENT, refused.getStatus().getCode());
        await("the registration's error", WAIT, () -> !events.errors.isEmpty());
        // Not a synchronisation: a window five times the longest first retry
        // wait (100 ms) in which a wrongly retried stream would show up.
        Thread.sleep(500);
        assertEquals("one Lock call, not retried", 1, calls.count("Lock"));
        assertEquals("one HoldKey call, not retried", 1, calls.count("HoldKey"));
        assertEquals(1, events.errors.size());
      }
    }
  }
}
