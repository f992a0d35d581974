package io.warren.examples;

import io.warren.client.ConfigWatcher;
import io.warren.client.Warren;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Reads a config value, prints it, and prints it again each time it changes.
 *
 *   examples/run.sh config [--key=example/greeting] [--changes=N]
 *   examples/run.sh config [--key=...] --set=VALUE     (writes the value and exits)
 *
 * Runs until Ctrl-C, or until it has printed N changes.
 */
public final class ConfigExample {
  public static void main(String[] argv) throws Exception {
    Args args = new Args(argv);
    String key = args.get("key", "WARREN_CONFIG_KEY", "example/greeting");
    String set = args.get("set", null, null);
    int changes = Integer.parseInt(args.get("changes", null, "0"));
    try (Warren warren = Warren.connect(Args.address())) {
      if (set != null) {
        System.out.println("set " + key + " = " + set + " (version " + warren.putConfig(key, set).getVersion() + ")");
        return;
      }
      CountDownLatch remaining = new CountDownLatch(changes);
      try (ConfigWatcher watcher = warren.watchConfig(ConfigWatcher.Options.key(key), change -> {
        if (change.initial) return; // printed below, before "watching"
        System.out.println(change.type == ConfigWatcher.ChangeType.DELETE
            ? key + " was deleted"
            : key + " = " + change.valueUtf8() + "  (changed, version " + change.entry.getVersion() + ")");
        remaining.countDown();
      })) {
        if (!watcher.awaitInitial(Duration.ofSeconds(10))) {
          System.out.println("no answer from the server within 10s");
          System.exit(1);
        }
        System.out.println(watcher.get()
            .map(e -> key + " = " + e.getValue().toStringUtf8() + "  (version " + e.getVersion() + ")")
            .orElse(key + " = <not set>"));
        System.out.println("watching " + key + " for changes");
        if (changes > 0) {
          if (!remaining.await(60, TimeUnit.SECONDS)) System.exit(1);
        } else {
          Thread.currentThread().join();
        }
      }
    }
  }
}
