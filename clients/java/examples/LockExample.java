package io.warren.examples;

import io.warren.client.HeldLock;
import io.warren.client.Warren;
import java.time.Duration;
import java.util.concurrent.TimeoutException;

/**
 * Takes a lock, does fenced work under it, and releases it.
 *
 *   examples/run.sh lock [--lock=example] [--limit=1] [--timeout=SECONDS]
 *                        [--key=KEY] [--hold=SECONDS]
 *
 * Waits at most --timeout seconds (default 30; 0 tries once) for the lock,
 * writes "held by <pid>" to --key (default example-locks/<lock>) fenced with
 * the lock's token, holds it --hold seconds more, then releases it.
 */
public final class LockExample {
  public static void main(String[] argv) throws Exception {
    Args args = new Args(argv);
    String name = args.get("lock", "WARREN_LOCK", "example");
    int limit = Integer.parseInt(args.get("limit", null, "1"));
    Duration timeout = Duration.ofSeconds(Long.parseLong(args.get("timeout", null, "30")));
    String key = args.get("key", null, "example-locks/" + name);
    long hold = Long.parseLong(args.get("hold", null, "0"));

    try (Warren warren = Warren.connect(Args.address())) {
      try (HeldLock held = warren.locker().acquire(name, limit, timeout,
          (lock, reason) -> System.out.println("lost the lock: " + reason))) {
        System.out.println("acquired lock \"" + name + "\", fencing token " + held.fencingToken());
        // Refused by the server if the lock was lost in the meantime.
        warren.putConfig(key, "held by " + ProcessHandle.current().pid(), held.fence());
        System.out.println("wrote " + key + " fenced by the lock");
        Thread.sleep(Duration.ofSeconds(hold).toMillis()); // the example's work, not a sync
      } catch (TimeoutException e) {
        System.out.println("not acquired: " + e.getMessage());
        System.exit(1);
      }
      System.out.println("released");
    }
  }
}
