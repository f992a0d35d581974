package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static io.warren.client.TestSupport.utf8;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.warren.v1.Delivery;
import io.warren.v1.Fence;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.Test;

/** Fenced config writes and publishes against the live server in WARREN_ADDRESS. */
public class FenceTest extends LiveServerTest {
  private String value(String key) {
    return warren.getConfig(key).map(e -> e.getValue().toStringUtf8()).orElse(null);
  }

  /** The refusal of a fence that no longer holds: FAILED_PRECONDITION naming it. */
  private static void assertFenceRefused(String owner, Throwable thrown) {
    Status status = Status.fromThrowable(thrown);
    assertEquals(status.toString(), Status.Code.FAILED_PRECONDITION, status.getCode());
    String message = status.getDescription();
    assertTrue(message, message.startsWith("fence: ") && message.contains(owner));
  }

  @Test
  public void aLeadersFencedWritesAndPublishesAreRefusedAfterItResigned() throws Exception {
    String election = unique("java-fenced");
    String key = unique("java-fenced") + "/owner";
    String queue = unique("java-fenced");
    List<Delivery> received = new CopyOnWriteArrayList<>();
    Fence fence;
    try (Subscriber sub = warren.subscribe(Subscriber.Options.queue(queue), received::add)) {
      sub.awaitSubscribed(WAIT);
      Publisher publisher = warren.publisher();
      Elector elector = warren.elect(new Elector.Options(election), new Elector.Listener() {});
      try {
        await("elected", WAIT, elector::isLeader);
        fence = elector.fence();
        assertEquals(election, fence.getElection());
        assertEquals(elector.leader().getFencingToken(), fence.getFencingToken());
        assertEquals(fence, Fences.election(election, fence.getFencingToken()));

        warren.putConfig(key, "leader-1", fence);
        assertEquals("leader-1", value(key));
        String id = publisher.publishToQueue(queue, utf8("while leading"), fence).get(20, TimeUnit.SECONDS);
        await("the fenced message", WAIT, () -> received.size() == 1);
        Delivery d = received.get(0);
        assertEquals(id, d.getMessageId());
        assertEquals("election:" + election, d.getHeadersMap().get("warren-fence"));
        assertEquals(Long.toString(fence.getFencingToken()), d.getHeadersMap().get("warren-fencing-token"));
      } finally {
        elector.close(); // resigns
      }
      assertThrows("no fence without leading", IllegalStateException.class, elector::fence);

      // Resigned: the old leader's fence no longer holds.
      assertFenceRefused("election:" + election,
          assertThrows(StatusRuntimeException.class, () -> warren.putConfig(key, "late", fence)));
      assertEquals("the value is unchanged", "leader-1", value(key));
      assertFenceRefused("election:" + election,
          assertThrows(StatusRuntimeException.class, () -> warren.deleteConfig(key, fence)));
      assertEquals("leader-1", value(key));
      CompletableFuture<String> late = publisher.publishToQueue(queue, utf8("late"), fence);
      ExecutionException failed = assertThrows(ExecutionException.class, () -> late.get(20, TimeUnit.SECONDS));
      assertFenceRefused("election:" + election, failed.getCause());
      // A message that was published would have arrived by the time a second,
      // unfenced one does (same queue, in order).
      publisher.publishToQueue(queue, utf8("marker")).get(20, TimeUnit.SECONDS);
      await("the marker", WAIT, () -> received.size() >= 2);
      assertEquals("marker", received.get(received.size() - 1).getPayload().toStringUtf8());
      assertEquals("nothing but the marker after the refusal", 2, received.size());
    }
  }

  @Test
  public void aLocksFenceHoldsWhileTheLockIsHeld() throws Exception {
    String name = unique("java-fenced-lock");
    String key = unique("java-fenced-lock") + "/k";
    Fence fence;
    try (HeldLock held = warren.locker().acquire(name, 1, WAIT)) {
      fence = held.fence();
      assertEquals(Fences.lock(name, held.fencingToken()), fence);
      warren.putConfig(key, "held", fence);
    }
    assertFenceRefused("lock:" + name,
        assertThrows(StatusRuntimeException.class, () -> warren.putConfig(key, "released", fence)));
    assertEquals("held", value(key));
  }

  @Test
  public void aFenceNamingNoElectionIsRefused() {
    String election = unique("java-no-such-election");
    String key = unique("java-unfenced") + "/k";
    assertFenceRefused("election:" + election, assertThrows(StatusRuntimeException.class,
        () -> warren.putConfig(key, "x", Fences.election(election, 42))));
    assertEquals(null, value(key));
  }
}
