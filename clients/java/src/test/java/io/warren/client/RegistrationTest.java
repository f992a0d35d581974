package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static io.warren.client.TestSupport.utf8;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.warren.v1.ConfigEntry;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.Test;

/** Registration (HoldKey) against the live server in WARREN_ADDRESS. */
public class RegistrationTest extends LiveServerTest {
  /** Records what a registration reports. */
  static final class Recorder implements Registration.Listener {
    final List<String> held = new CopyOnWriteArrayList<>();
    final List<LossReason> lost = new CopyOnWriteArrayList<>();
    final List<Status> errors = new CopyOnWriteArrayList<>();

    @Override
    public void onHeld(ConfigEntry entry) {
      held.add(entry.getValue().toStringUtf8());
    }

    @Override
    public void onLost(LossReason reason) {
      lost.add(reason);
    }

    @Override
    public void onError(Status status) {
      errors.add(status);
    }

    @Override
    public String toString() {
      return "held " + held + ", lost " + lost + ", errors " + errors;
    }
  }

  @Test
  public void aHeldKeyIsVisibleWhileOpenAndGoneAfterClose() throws Exception {
    String key = unique("java-services") + "/api-1";
    Recorder events = new Recorder();
    try (Registration reg = warren.holdKey(new Registration.Options(key, utf8("10.0.0.1:80")), events)) {
      assertTrue(reg.awaitHeld(WAIT));
      assertTrue(reg.isHeld());
      ConfigEntry seen = warren.getConfig(key).orElseThrow();
      assertTrue("a held key", seen.getHeld());
      assertEquals("10.0.0.1:80", seen.getValue().toStringUtf8());

      reg.setValue(utf8("10.0.0.1:81"));
      await("the new value", WAIT, () -> warren.getConfig(key).orElseThrow().getValue().toStringUtf8()
          .equals("10.0.0.1:81"));
      await("both holds told", WAIT, () -> events.held.equals(List.of("10.0.0.1:80", "10.0.0.1:81")));
      assertEquals("10.0.0.1:81", reg.entry().orElseThrow().getValue().toStringUtf8());
    }
    assertFalse("gone after close", warren.getConfig(key).isPresent());
    assertEquals(List.of(), events.lost);
    assertEquals(List.of(), events.errors);
  }

  @Test
  public void anExistingKeyIsRefusedForGoodAndTheCallbackThreadEnds() throws Exception {
    String key = unique("java-taken") + "/k";
    warren.putConfig(key, "persistent");
    Recorder events = new Recorder();
    Registration reg = warren.holdKey(new Registration.Options(key, utf8("mine")), events);
    StatusRuntimeException refused =
        assertThrows(StatusRuntimeException.class, () -> reg.awaitHeld(WAIT));
    assertEquals(Status.Code.ALREADY_EXISTS, refused.getStatus().getCode());
    await("the error is told", WAIT, () -> events.errors.size() == 1);
    assertFalse(reg.isHeld());
    // Stopped for good: its callback thread ends without close().
    await("no registration callback thread left", WAIT, () -> !TestSupport.threadsNamed("warren-registration"));
    assertEquals("persistent", warren.getConfig(key).orElseThrow().getValue().toStringUtf8());
    reg.close();
  }

  /**
   * Breaks: the registration's warrend freezes (SIGSTOP): the stream stays
   * open but silent. Holds: isHeld turns false within about two heartbeat
   * intervals (LEASE_EXPIRED), and the key is held again once the server runs
   * again (SIGCONT).
   */
  @Test
  public void theLeaseEndsWhenTheServerFreezesAndTheKeyIsHeldAgain() throws Exception {
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("hold-freeze"));
        Warren own = Warren.connect(server.address())) {
      String key = unique("java-hold-freeze") + "/k";
      Recorder events = new Recorder();
      try (Registration reg = own.holdKey(new Registration.Options(key, utf8("v"))
          .heartbeatInterval(Duration.ofMillis(300))
          .backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500))), events)) {
        assertTrue(reg.awaitHeld(WAIT));
        server.signal("STOP");
        long frozenAt = System.nanoTime();
        try {
          await("not held", Duration.ofSeconds(5), () -> !reg.isHeld());
          long tookMs = java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - frozenAt);
          assertTrue("within ~2 intervals, took " + tookMs + " ms", tookMs < 2000);
          await("the lost event", Duration.ofSeconds(5), () -> !events.lost.isEmpty());
          assertEquals(LossReason.LEASE_EXPIRED, events.lost.get(0));
        } finally {
          server.signal("CONT");
        }
        try {
          await("held again", WAIT, () -> reg.isHeld() && events.held.size() >= 2);
        } catch (AssertionError e) {
          throw new AssertionError(e.getMessage() + "; " + events, e);
        }
        assertEquals(List.of(), events.errors);
        assertTrue(own.getConfig(key).orElseThrow().getHeld());
      }
    }
  }

  /**
   * Breaks: the registration's warrend stops (SIGTERM) and comes back.
   * Holds: the registration tells the loss, holds the key again on the
   * restarted server with its latest value, and the key is gone after close.
   */
  @Test
  public void aBrokenStreamIsHeldAgain() throws Exception {
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("hold-break"));
        Warren own = Warren.connect(server.address())) {
      String key = unique("java-rehold") + "/k";
      Recorder events = new Recorder();
      try (Registration reg = own.holdKey(new Registration.Options(key, utf8("first"))
          .backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500))), events)) {
        assertTrue(reg.awaitHeld(WAIT));
        reg.setValue(utf8("second"));
        await("the second value held", WAIT, () -> events.held.contains("second"));
        server.stop();
        await("the loss", WAIT, () -> events.lost.contains(LossReason.STREAM_BROKEN));
        assertFalse(reg.isHeld());
        server.restart();
        await("held again", WAIT, () -> reg.isHeld() && events.held.size() >= 3);
        assertEquals("second", events.held.get(events.held.size() - 1));
        ConfigEntry seen = own.getConfig(key).orElseThrow();
        assertTrue(seen.getHeld());
        assertEquals("second", seen.getValue().toStringUtf8());
        assertEquals(List.of(), events.errors);
      }
      assertFalse("gone after close", own.getConfig(key).isPresent());
    }
  }
}
