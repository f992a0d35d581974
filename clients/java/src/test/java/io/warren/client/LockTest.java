package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.warren.v1.GetLockResponse;
import io.warren.v1.LockHolder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.Test;

/** Locker and HeldLock against the live server in WARREN_ADDRESS. */
public class LockTest extends LiveServerTest {
  private static final Duration WAIT = Duration.ofSeconds(30); // five clients take turns

  /** Records the losses of held locks. */
  static final class Losses implements HeldLock.Listener {
    final List<LossReason> reasons = new CopyOnWriteArrayList<>();

    @Override
    public void onLost(HeldLock lock, LossReason reason) {
      reasons.add(reason);
    }
  }

  @Test
  public void acquireHoldsWithATokenAndCloseReleases() throws Exception {
    String name = unique("java-lock");
    Locker locker = warren.locker(new Locker.Options().holderId("worker-1"));
    long token;
    try (HeldLock held = locker.acquire(name, 1, WAIT)) {
      assertTrue(held.isHeld());
      token = held.fencingToken();
      assertTrue("a token > 0: " + token, token > 0);
      assertEquals(name, held.fence().getLock());
      assertEquals(token, held.fence().getFencingToken());
      GetLockResponse seen = locker.getLock(name);
      assertEquals(1, seen.getHoldersCount());
      LockHolder h = seen.getHolders(0);
      assertEquals("worker-1", h.getHolderId());
      assertEquals(token, h.getFencingToken());
      assertEquals(1, seen.getLimit());
    }
    assertEquals("released at close", GetLockResponse.getDefaultInstance(), locker.getLock(name));
    try (HeldLock again = locker.acquire(name, 1, WAIT)) {
      assertTrue("a later holder's token is greater", again.fencingToken() > token);
    }
  }

  /**
   * Five clients take turns on one mutex, each incrementing a config counter
   * without compare-and-set while holding it: no two ever hold at once, and
   * no increment is lost.
   */
  @Test
  public void aMutexExcludes() throws Exception {
    String name = unique("java-mutex");
    String counter = unique("java-mutex") + "/count";
    warren.putConfig(counter, "0");
    int clients = 5;
    int rounds = 4;
    AtomicInteger inside = new AtomicInteger();
    AtomicInteger overlaps = new AtomicInteger();
    ExecutorService pool = Executors.newFixedThreadPool(clients);
    List<Warren> connections = new ArrayList<>();
    try {
      List<Future<?>> done = new ArrayList<>();
      for (int c = 0; c < clients; c++) {
        Warren own = Warren.connect(TestSupport.address());
        connections.add(own);
        Locker locker = own.locker();
        done.add(pool.submit(() -> {
          for (int r = 0; r < rounds; r++) {
            try (HeldLock held = locker.acquire(name, 1, WAIT)) {
              if (inside.incrementAndGet() != 1) overlaps.incrementAndGet();
              int n = Integer.parseInt(own.getConfig(counter).orElseThrow().getValue().toStringUtf8());
              own.putConfig(counter, Integer.toString(n + 1), held.fence());
              inside.decrementAndGet();
            }
          }
          return null;
        }));
      }
      for (Future<?> f : done) f.get(120, TimeUnit.SECONDS);
    } finally {
      pool.shutdownNow();
      for (Warren w : connections) w.close();
    }
    assertEquals("never two holders", 0, overlaps.get());
    assertEquals(Integer.toString(clients * rounds),
        warren.getConfig(counter).orElseThrow().getValue().toStringUtf8());
  }

  /** A semaphore of 3 with 6 clients: 3 hold, 3 wait, and each waiter gets in as a slot frees. */
  @Test
  public void aSemaphoreAdmitsItsLimit() throws Exception {
    String name = unique("java-semaphore");
    Locker locker = warren.locker();
    List<CompletableFuture<HeldLock>> all = new ArrayList<>();
    ExecutorService pool = Executors.newCachedThreadPool();
    try {
      for (int i = 0; i < 6; i++) {
        all.add(CompletableFuture.supplyAsync(() -> {
          try {
            return locker.acquire(name, 3, null);
          } catch (Exception e) {
            throw new RuntimeException(e);
          }
        }, pool));
      }
      await("3 holders and 3 waiters", WAIT, () -> {
        GetLockResponse now = locker.getLock(name);
        return now.getHoldersCount() == 3 && now.getWaiting() == 3;
      });
      assertEquals(3, locker.getLock(name).getLimit());
      await("3 acquires returned", WAIT,
          () -> all.stream().filter(CompletableFuture::isDone).count() == 3);
      // Release one holder at a time: a waiter takes its slot, never a fourth.
      for (int released = 0; released < 6; released++) {
        HeldLock holder = all.stream().filter(CompletableFuture::isDone).map(CompletableFuture::join)
            .filter(HeldLock::isHeld).findFirst().orElseThrow();
        holder.close();
        int expectedHolders = Math.min(3, 6 - released - 1);
        await(expectedHolders + " holders after " + (released + 1) + " releases", WAIT,
            () -> all.stream().filter(f -> f.isDone() && f.join().isHeld()).count() == expectedHolders);
        assertTrue("at most 3 holders", locker.getLock(name).getHoldersCount() <= 3);
      }
      assertEquals(GetLockResponse.getDefaultInstance(), locker.getLock(name));
    } finally {
      for (CompletableFuture<HeldLock> f : all) {
        if (f.isDone() && !f.isCompletedExceptionally()) f.join().close();
      }
      pool.shutdownNow();
    }
  }

  @Test
  public void tryOnceAndABoundedWaitTimeOutAndLeaveNothing() throws Exception {
    String name = unique("java-busy");
    Locker locker = warren.locker();
    try (HeldLock held = locker.acquire(name, 1, WAIT)) {
      long t0 = System.nanoTime();
      assertThrows(TimeoutException.class, () -> locker.acquire(name, 1, Duration.ZERO));
      long tried = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertTrue("try-once does not wait, took " + tried + " ms", tried < 2000);

      t0 = System.nanoTime();
      TimeoutException late =
          assertThrows(TimeoutException.class, () -> locker.acquire(name, 1, Duration.ofMillis(700)));
      long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertTrue("waited the timeout, " + waited + " ms", waited >= 650);
      assertTrue("no longer than the timeout and the grace, " + waited + " ms",
          waited < 700 + Locker.VERDICT_GRACE.toMillis() + 1000);
      assertTrue(late.getMessage(), late.getMessage().contains(name));

      GetLockResponse now = locker.getLock(name);
      assertEquals("nobody waits", 0, now.getWaiting());
      assertEquals(1, now.getHoldersCount());
      assertEquals(held.fencingToken(), now.getHolders(0).getFencingToken());
      assertTrue(held.isHeld());
    }
  }

  @Test
  public void aLimitOtherThanTheLocksIsRefused() throws Exception {
    String name = unique("java-limit");
    Locker locker = warren.locker();
    try (HeldLock held = locker.acquire(name, 3, WAIT)) {
      StatusRuntimeException refused =
          assertThrows(StatusRuntimeException.class, () -> locker.acquire(name, 2, WAIT));
      assertEquals(Status.Code.FAILED_PRECONDITION, refused.getStatus().getCode());
      assertEquals(1, locker.getLock(name).getHoldersCount());
      assertEquals(0, locker.getLock(name).getWaiting());
      assertTrue(held.isHeld());
    }
  }

  @Test
  public void interruptingAWaiterLeavesNothing() throws Exception {
    String name = unique("java-interrupt");
    Locker locker = warren.locker();
    try (HeldLock held = locker.acquire(name, 1, WAIT)) {
      CompletableFuture<Throwable> outcome = new CompletableFuture<>();
      Thread waiter = new Thread(() -> {
        try {
          locker.acquire(name, 1, null).close();
          outcome.complete(null);
        } catch (Throwable t) {
          outcome.complete(t);
        }
      });
      waiter.start();
      await("the waiter queues", WAIT, () -> locker.getLock(name).getWaiting() == 1);
      waiter.interrupt();
      assertTrue(outcome.get(20, TimeUnit.SECONDS) instanceof InterruptedException);
      await("its node is gone", WAIT, () -> locker.getLock(name).getWaiting() == 0);
      assertTrue(held.isHeld());
    }
  }

  /**
   * Breaks: the holder's warrend stops (SIGTERM) and comes back. Holds: the
   * lock is lost at once (STREAM_BROKEN), isHeld turns false, and the lock
   * is not taken again behind the caller's back.
   */
  @Test
  public void aBrokenStreamLosesTheLockForGood() throws Exception {
    TestSupport.CallLog calls = new TestSupport.CallLog();
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("lock-break"));
        Warren own = Warren.connect(server.address(), calls)) {
      String name = unique("java-break");
      Losses losses = new Losses();
      HeldLock held = own.locker().acquire(name, 1, WAIT, losses);
      try {
        server.stop();
        await("the loss", WAIT, () -> losses.reasons.contains(LossReason.STREAM_BROKEN));
        assertFalse(held.isHeld());
        // Lost for good: the lock's callback thread ends without close().
        await("no lock callback thread left", WAIT, () -> !TestSupport.threadsNamed("warren-lock"));
        server.restart();
        await("the server answers again", WAIT, () -> {
          try {
            return own.locker().getLock(name).getHoldersCount() == 0;
          } catch (StatusRuntimeException e) {
            return false;
          }
        });
        // Not a synchronisation: a window of several retry waits in which a
        // wrongly re-acquiring lock would show up.
        Thread.sleep(500);
        assertEquals("one Lock call: no re-acquire", 1, calls.count("Lock"));
        assertFalse(held.isHeld());
      } finally {
        held.close();
      }
    }
  }

  /**
   * Breaks: a waiter's warrend stops (SIGTERM) and comes back while another
   * server of the cluster holds the lock for someone else. Holds: the waiter
   * waits again on a new stream within its timeout, and acquires once the
   * holder releases.
   */
  @Test
  public void aWaiterWaitsAgainAfterABrokenStream() throws Exception {
    TestSupport.CallLog calls = new TestSupport.CallLog();
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("lock-wait"));
        TestSupport.Warrend other = server.sameRoot();
        Warren waiterClient = Warren.connect(server.address(), calls);
        Warren holderClient = Warren.connect(other.address())) {
      String name = unique("java-rewait");
      Locker holders = holderClient.locker();
      HeldLock first = holders.acquire(name, 1, WAIT);
      CompletableFuture<HeldLock> waiter = CompletableFuture.supplyAsync(() -> {
        try {
          return waiterClient.locker(new Locker.Options()
              .backoff(new BackoffPolicy(Duration.ofMillis(50), Duration.ofMillis(500))))
              .acquire(name, 1, Duration.ofSeconds(60));
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      });
      try {
        await("the waiter queues", WAIT, () -> holders.getLock(name).getWaiting() == 1);
        server.stop();
        await("its stream broke", WAIT, () -> calls.count("Lock", Status.Code.UNAVAILABLE) >= 1);
        await("its place in the queue is gone", WAIT, () -> holders.getLock(name).getWaiting() == 0);
        server.restart();
        await("it queues again", WAIT, () -> holders.getLock(name).getWaiting() == 1);
        assertFalse(waiter.isDone());
        long token = first.fencingToken();
        first.close();
        HeldLock second = waiter.get(30, TimeUnit.SECONDS);
        assertTrue(second.isHeld());
        assertTrue("a greater token", second.fencingToken() > token);
        second.close();
      } finally {
        first.close();
        waiter.thenAccept(HeldLock::close);
      }
    }
  }

  /**
   * Breaks: the holder's warrend freezes (SIGSTOP): the stream stays open but
   * silent. Holds: isHeld turns false within about two heartbeat intervals
   * (LEASE_EXPIRED), before the server's 4 s session could expire and let
   * another client hold the lock.
   */
  @Test
  public void theLeaseEndsWhenTheServerFreezes() throws Exception {
    try (TestSupport.Warrend server = new TestSupport.Warrend(unique("lock-freeze"));
        Warren own = Warren.connect(server.address())) {
      Losses losses = new Losses();
      try (HeldLock held = own.locker(new Locker.Options().heartbeatInterval(Duration.ofMillis(300)))
          .acquire(unique("java-freeze"), 1, WAIT, losses)) {
        assertEquals("the interval in force", Duration.ofMillis(300), held.leaseInterval());
        server.signal("STOP");
        long frozenAt = System.nanoTime();
        try {
          await("not held", Duration.ofSeconds(5), () -> !held.isHeld());
          long tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - frozenAt);
          assertTrue("within ~2 intervals, took " + tookMs + " ms", tookMs < 2000);
          await("the lost event", Duration.ofSeconds(5), () -> !losses.reasons.isEmpty());
          assertEquals(LossReason.LEASE_EXPIRED, losses.reasons.get(0));
        } finally {
          server.signal("CONT");
        }
      }
    }
  }
}
