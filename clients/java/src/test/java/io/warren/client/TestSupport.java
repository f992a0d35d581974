package io.warren.client;

import static org.junit.Assert.fail;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Shared helpers: the live server's address, unique names, polling, own warrends. */
final class TestSupport {
  private TestSupport() {}

  static String address() {
    String a = System.getenv("WARREN_ADDRESS");
    if (a == null || a.isEmpty()) fail("WARREN_ADDRESS is not set (run under scripts/with-warrend.sh)");
    return a;
  }

  /** A name unique to this run, so parallel runs on the shared stack never meet. */
  static String unique(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 12);
  }

  static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  /** Whether any thread whose name starts with {@code prefix} is alive (a wrapper's own). */
  static boolean threadsNamed(String prefix) {
    return Thread.getAllStackTraces().keySet().stream()
        .anyMatch(t -> t.getName().startsWith(prefix) && t.isAlive());
  }

  /** Polls {@code condition} until it holds or {@code timeout} passes (no blind sleeps). */
  static void await(String what, Duration timeout, BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) fail("timed out after " + timeout + " waiting for: " + what);
      Thread.sleep(20);
    }
  }

  /** Records how each call of a channel ended: "WatchConfig RESOURCE_EXHAUSTED". */
  static final class CallLog implements ClientInterceptor {
    final List<String> ends = new CopyOnWriteArrayList<>();

    long count(String method, Status.Code code) {
      return ends.stream().filter((method + " " + code)::equals).count();
    }

    long count(String method) {
      return ends.stream().filter(e -> e.startsWith(method + " ")).count();
    }

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(
        MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      String name = method.getBareMethodName();
      return new ForwardingClientCall.SimpleForwardingClientCall<Q, R>(next.newCall(method, options)) {
        @Override
        public void start(Listener<R> listener, Metadata headers) {
          super.start(
              new ForwardingClientCallListener.SimpleForwardingClientCallListener<R>(listener) {
                @Override
                public void onClose(Status status, Metadata trailers) {
                  ends.add(name + " " + status.getCode());
                  super.onClose(status, trailers);
                }
              },
              headers);
        }
      };
    }
  }

  /**
   * A warrend of the test's own, for tests that stop, freeze or restart the
   * server. Uses WARREN_WARREND, WARREN_TEST_ZK, WARREN_TEST_AMQP_URL and a
   * ZooKeeper root under WARREN_ROOT (set by scripts/with-warrend.sh).
   */
  static final class Warrend implements AutoCloseable {
    private static final Pattern SERVING = Pattern.compile("warrend is serving on (\\S+):(\\d+)");
    final String root;
    private final String[] extraFlags;
    private Process process;
    private int port;

    Warrend(String rootSuffix, String... extraFlags) throws Exception {
      this.root = env("WARREN_ROOT") + "-" + rootSuffix;
      this.extraFlags = extraFlags;
      start(0);
    }

    static String env(String name) {
      String v = System.getenv(name);
      if (v == null || v.isEmpty()) fail(name + " is not set (run under scripts/with-warrend.sh)");
      return v;
    }

    String address() {
      return "127.0.0.1:" + port;
    }

    /** A second warrend of the same cluster (the same ZooKeeper root). */
    Warrend sameRoot() throws Exception {
      return new Warrend(root.substring(env("WARREN_ROOT").length() + 1));
    }

    long pid() {
      return process.pid();
    }

    /** Starts warrend on {@code port} (0: any) and waits until it serves. */
    void start(int wantedPort) throws Exception {
      java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of(
          env("WARREN_WARREND"),
          "--listen=127.0.0.1:" + wantedPort,
          "--zk_connect=" + env("WARREN_TEST_ZK"),
          "--amqp_urls=" + env("WARREN_TEST_AMQP_URL"),
          "--root=" + root,
          "--zk_session_timeout=4s",
          "--shutdown_grace=2s",
          "--log_level=warn"));
      cmd.addAll(java.util.List.of(extraFlags));
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD);
      // Restarting on the same port right after a stop may race the old
      // socket's release: retry a few times rather than sleeping blindly.
      for (int attempt = 0; ; attempt++) {
        process = pb.start();
        CompletableFuture<Integer> served = new CompletableFuture<>();
        Process p = process;
        Thread reader = new Thread(() -> {
          try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
              Matcher m = SERVING.matcher(line);
              if (m.find()) served.complete(Integer.parseInt(m.group(2)));
            }
          } catch (IOException ignored) {
            // The process ended.
          }
          served.complete(-1);
        }, "warrend-stdout");
        reader.setDaemon(true);
        reader.start();
        int got = served.get(30, TimeUnit.SECONDS);
        if (got > 0) {
          port = got;
          return;
        }
        p.waitFor(5, TimeUnit.SECONDS);
        if (attempt >= 20) fail("warrend did not start on port " + wantedPort);
        Thread.sleep(250); // back off before trying the port again
      }
    }

    /** SIGTERM: open streams end with UNAVAILABLE, then it exits. */
    void stop() throws InterruptedException {
      process.destroy();
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor();
      }
    }

    /** SIGKILL: gone at once, as in a crash or a lost machine; nothing is drained. */
    void kill() throws InterruptedException {
      process.destroyForcibly();
      process.waitFor();
    }

    /** Starts it again on the same port and waits until it serves. */
    void restart() throws Exception {
      start(port);
    }

    void signal(String sig) throws IOException, InterruptedException {
      Process k = new ProcessBuilder("kill", "-" + sig, Long.toString(pid())).inheritIO().start();
      if (k.waitFor() != 0) fail("kill -" + sig + " failed");
    }

    @Override
    public void close() throws IOException {
      if (process == null || !process.isAlive()) return;
      try {
        signal("CONT"); // in case a test left it frozen
        stop();
      } catch (InterruptedException e) {
        process.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }

}
