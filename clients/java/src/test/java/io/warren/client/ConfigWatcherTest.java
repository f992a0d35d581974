package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.Test;

/** ConfigWatcher against the live server in WARREN_ADDRESS. */
public class ConfigWatcherTest extends LiveServerTest {
  static String value(java.util.Optional<io.warren.v1.ConfigEntry> e) {
    return e.map(x -> x.getValue().toString(StandardCharsets.UTF_8)).orElse(null);
  }

  @Test
  public void keyWatchSeesTheInitialValueAndEachChange() throws Exception {
    String key = unique("java") + "/greeting";
    warren.putConfig(key, "v1");
    List<ConfigWatcher.Change> changes = new CopyOnWriteArrayList<>();
    try (ConfigWatcher w = warren.watchConfig(ConfigWatcher.Options.key(key), changes::add)) {
      assertTrue(w.awaitInitial(WAIT));
      assertEquals("v1", value(w.get()));
      warren.putConfig(key, "v2");
      await("the change to v2", WAIT, () -> "v2".equals(value(w.get())) && changes.size() >= 2);
      ConfigWatcher.Change last = changes.get(changes.size() - 1);
      assertEquals(ConfigWatcher.ChangeType.PUT, last.type);
      assertEquals("v2", last.valueUtf8());
      assertEquals("v1", last.previous.getValue().toString(StandardCharsets.UTF_8));
      assertEquals(changes.get(0).entry.getVersion() + 1, last.entry.getVersion());
    }
  }

  @Test
  public void prefixWatchKeepsTheMap() throws Exception {
    String prefix = unique("java-prefix");
    warren.putConfig(prefix + "/a", "1");
    warren.putConfig(prefix + "/b", "2");
    List<ConfigWatcher.Change> changes = new CopyOnWriteArrayList<>();
    try (ConfigWatcher w = warren.watchConfig(ConfigWatcher.Options.prefix(prefix), changes::add)) {
      assertTrue(w.awaitInitial(WAIT));
      assertTrue(w.snapshot().keySet().containsAll(Set.of(prefix + "/a", prefix + "/b")));
      warren.putConfig(prefix + "/c/deep", "3");
      warren.config().deleteConfig(
          io.warren.v1.DeleteConfigRequest.newBuilder().setKey(prefix + "/a").build());
      await("c added and a deleted", WAIT,
          () -> w.get(prefix + "/c/deep").isPresent() && w.get(prefix + "/a").isEmpty());
      assertEquals("3", value(w.get(prefix + "/c/deep")));
      // Listeners run on the watcher's executor, after the map has changed.
      await("a's DELETE reaches the listener", WAIT, () -> changes.stream().anyMatch(
          c -> c.type == ConfigWatcher.ChangeType.DELETE && c.key.equals(prefix + "/a")));
    }
  }
}
