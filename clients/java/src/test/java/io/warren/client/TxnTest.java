package io.warren.client;

import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.warren.v1.ConfigEntry;
import io.warren.v1.PutConfigRequest;
import io.warren.v1.TxnCheck;
import io.warren.v1.TxnOp;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.Before;
import org.junit.Test;

/** Warren.txn against the live server in WARREN_ADDRESS. */
public class TxnTest extends LiveServerTest {
  private String prefix;

  @Before
  public void choosePrefix() {
    prefix = unique("java-txn");
  }

  private String k(String name) {
    return prefix + "/" + name;
  }

  /** The value of each of the keys, null for a missing one. */
  private Map<String, String> values(String... names) {
    Map<String, String> out = new TreeMap<>();
    for (String n : names) {
      out.put(n, warren.getConfig(k(n)).map(e -> e.getValue().toStringUtf8()).orElse(null));
    }
    return out;
  }

  @Test
  public void checksAndOpsApplyTogether() {
    ConfigEntry a = warren.putConfig(k("a"), "1");
    warren.putConfig(k("c"), "old");
    List<ConfigEntry> entries = warren.txn(
        List.of(Txn.version(k("a"), a.getVersion()), Txn.absent(k("b")), Txn.exists(k("c"))),
        List.of(Txn.put(k("a"), "2"), Txn.put(k("b"), "new"), Txn.delete(k("c"))),
        null);
    assertEquals("one entry per put, in op order", 2, entries.size());
    assertEquals(k("a"), entries.get(0).getKey());
    assertEquals("2", entries.get(0).getValue().toStringUtf8());
    assertEquals(a.getVersion() + 1, entries.get(0).getVersion());
    assertEquals(k("b"), entries.get(1).getKey());
    Map<String, String> want = new TreeMap<>();
    want.put("a", "2");
    want.put("b", "new");
    want.put("c", null);
    assertEquals(want, values("a", "b", "c"));
  }

  @Test
  public void aFailingCheckOrOpAtAnyPositionChangesNothing() {
    ConfigEntry a = warren.putConfig(k("a"), "1");
    warren.putConfig(k("b"), "2");
    Map<String, String> before = values("a", "b", "new");
    List<TxnOp> ops = List.of(Txn.put(k("a"), "changed"), Txn.put(k("new"), "x"), Txn.delete(k("b")));
    TxnCheck pass = Txn.version(k("a"), a.getVersion());
    TxnCheck fail = Txn.version(k("a"), a.getVersion() + 5);
    for (int i = 0; i < 3; i++) {
      List<TxnCheck> checks = new java.util.ArrayList<>(List.of(pass, Txn.exists(k("b")), pass));
      checks.set(i, i == 1 ? Txn.absent(k("b")) : fail);
      StatusRuntimeException refused =
          assertThrows(StatusRuntimeException.class, () -> warren.txn(checks, ops, null));
      assertEquals(Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode());
      assertTrue(refused.getStatus().getDescription(),
          refused.getStatus().getDescription().startsWith("checks[" + i + "]"));
      assertEquals(before, values("a", "b", "new"));
    }
    // An op that fails (create-only on an existing key) at index 1.
    TxnOp createOnly = TxnOp.newBuilder()
        .setPut(PutConfigRequest.newBuilder().setKey(k("b")).setCreateOnly(true)).build();
    StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
        () -> warren.txn(List.of(), List.of(ops.get(0), createOnly, ops.get(1)), null));
    assertEquals(Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode());
    assertTrue(refused.getStatus().getDescription(),
        refused.getStatus().getDescription().startsWith("ops[1]"));
    assertEquals(before, values("a", "b", "new"));
  }

  @Test
  public void aFencedTxnAppliesOnlyWhileTheFenceHolds() throws Exception {
    String name = unique("java-txn-lock");
    io.warren.v1.Fence fence;
    try (HeldLock held = warren.locker().acquire(name, 1, Duration.ofSeconds(20))) {
      fence = held.fence();
      warren.txn(List.of(), List.of(Txn.put(k("a"), "held")), fence);
    }
    StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
        () -> warren.txn(List.of(), List.of(Txn.put(k("a"), "late"), Txn.put(k("b"), "late")), fence));
    assertEquals(Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode());
    assertTrue(refused.getStatus().getDescription(),
        refused.getStatus().getDescription().startsWith("fence: "));
    Map<String, String> want = new TreeMap<>();
    want.put("a", "held");
    want.put("b", null);
    assertEquals(want, values("a", "b"));
  }
}
