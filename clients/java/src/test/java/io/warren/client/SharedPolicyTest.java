package io.warren.client;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;

import io.grpc.Status;
import io.warren.v1.MessagingServiceGrpc;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;
import org.junit.Test;

/**
 * The wrappers against the files every client language shares:
 * clients/retry-policy.json (each code's unary and stream decision, the
 * backoff, the channel) and clients/defaults.json. A change in either file
 * that the Java client does not follow fails here.
 */
public class SharedPolicyTest {
  private static double number(Map<String, Object> object, String key) {
    Object v = object.get(key);
    if (!(v instanceof Double)) throw new AssertionError(key + " is not a number: " + v);
    return (Double) v;
  }

  private static Duration millis(Map<String, Object> object, String key) {
    return Duration.ofMillis((long) number(object, key));
  }

  @Test
  public void everyStatusCodeIsClassifiedAsTheFileSays() throws Exception {
    Map<String, Object> codes = Json.object(Json.readClientsFile("retry-policy.json").get("codes"));
    Set<Status.Code> seen = EnumSet.noneOf(Status.Code.class);
    for (Map.Entry<String, Object> row : codes.entrySet()) {
      Status.Code code = Status.Code.valueOf(row.getKey());
      Map<String, Object> want = Json.object(row.getValue());
      assertEquals(row.getKey() + " number", code.value(), (int) number(want, "number"));
      assertEquals(row.getKey() + " unary",
          want.get("unary"), RetryPolicy.unary(code).name().toLowerCase());
      assertEquals(row.getKey() + " stream",
          want.get("stream"), RetryPolicy.stream(code).name().toLowerCase());
      seen.add(code);
    }
    assertEquals("the file lists every gRPC code", EnumSet.allOf(Status.Code.class), seen);
  }

  @Test
  public void theBackoffIsTheFilesAndEveryWrapperUsesIt() throws Exception {
    Map<String, Object> file =
        Json.object(Json.readClientsFile("retry-policy.json").get("backoff"));
    BackoffPolicy b = BackoffPolicy.DEFAULT;
    assertEquals(millis(file, "initial_ms"), b.initial());
    assertEquals(number(file, "multiplier"), b.multiplier(), 0.0);
    assertEquals(millis(file, "max_ms"), b.max());
    // Equal jitter: attempt n waits within [d/2, d], d = min(max, initial * multiplier^n).
    for (int n = 0; n < 12; n++) {
      double d = Math.min(b.max().toNanos(), b.initial().toNanos() * Math.pow(b.multiplier(), n));
      for (int sample = 0; sample < 200; sample++) {
        long got = b.delay(n).toNanos();
        assertTrue("attempt " + n + " waited " + got + " ns, want [" + d / 2 + ", " + d + "]",
            got >= Math.floor(d / 2) && got <= d);
      }
    }
    assertSame(b, new Publisher.Options().backoff);
    assertSame(b, Subscriber.Options.queue("q").backoff);
    assertSame(b, ConfigWatcher.Options.key("k").backoff);
    assertSame(b, new Elector.Options("e").backoff);
    assertSame(b, new Locker.Options().backoff);
    assertSame(b, new Registration.Options("k", new byte[0]).backoff);
  }

  @Test
  public void theChannelIsTheFiles() throws Exception {
    Map<String, Object> file =
        Json.object(Json.readClientsFile("retry-policy.json").get("channel"));
    assertEquals(millis(file, "initial_reconnect_backoff_ms"), RetryPolicy.INITIAL_RECONNECT_BACKOFF);
    assertEquals(millis(file, "max_reconnect_backoff_ms"), RetryPolicy.MAX_RECONNECT_BACKOFF);
    assertEquals(file.get("streams_wait_for_ready"), RetryPolicy.STREAMS_WAIT_FOR_READY);
    try (Warren warren = Warren.connect("127.0.0.1:1")) {
      BackoffPolicy cap = warren.reconnectCap().backoff;
      assertEquals(RetryPolicy.INITIAL_RECONNECT_BACKOFF, cap.initial());
      assertEquals(RetryPolicy.MAX_RECONNECT_BACKOFF, cap.max());
      assertEquals(RetryPolicy.STREAMS_WAIT_FOR_READY,
          RetryPolicy.forStreams(MessagingServiceGrpc.newStub(warren.channel()))
              .getCallOptions().isWaitForReady());
    }
  }

  @Test
  public void theDefaultsAreTheFiles() throws Exception {
    Map<String, Object> file = Json.readClientsFile("defaults.json");
    Map<String, Object> publisher = Json.object(file.get("publisher"));
    Map<String, Object> subscriber = Json.object(file.get("subscriber"));
    Map<String, Object> elector = Json.object(file.get("elector"));
    assertEquals(publisher.get("mandatory"), new Publisher.Options().mandatory);
    assertEquals((int) number(subscriber, "max_in_flight"), Subscriber.Options.queue("q").maxInFlight);
    assertEquals(millis(elector, "heartbeat_interval_ms"), new Elector.Options("e").heartbeatInterval);
    assertEquals(elector.get("rejoin_after_expiry"), new Elector.Options("e").rejoinAfterExpiry);
  }

  @Test
  public void theJsonReaderReadsWhatTheFilesUse() {
    Map<String, Object> parsed = Json.object(Json.parse(
        " {\"a\": [1, 2.5e1, -3], \"b\": {\"t\": true, \"f\": false, \"n\": null}, \"s\": \"x\\\"\\u00e9\"} "));
    assertEquals(java.util.List.of(1.0, 25.0, -3.0), parsed.get("a"));
    Map<String, Object> b = Json.object(parsed.get("b"));
    assertEquals(Boolean.TRUE, b.get("t"));
    assertEquals(Boolean.FALSE, b.get("f"));
    assertTrue(b.containsKey("n"));
    assertEquals("x\"\u00e9", parsed.get("s"));
    assertFalse(parsed.containsKey("z"));
  }
}
