package io.warren.examples;

import io.warren.client.StreamOffsets;
import io.warren.client.Subscriber;
import io.warren.client.Warren;
import io.warren.v1.Delivery;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A stream queue keeps its messages after they are acked: a reader replays it
 * from the first message, stores the offset after the last one it handled,
 * and a later reader resumes from that stored offset: nothing skipped,
 * nothing repeated.
 *
 *   examples/run.sh stream-replay [--stream=events] [--count=6]
 */
public final class StreamReplayExample {
  public static void main(String[] argv) throws Exception {
    Args args = new Args(argv);
    String stream = args.get("stream", "WARREN_STREAM", "events");
    int count = Integer.parseInt(args.get("count", null, "6"));
    int half = count / 2;
    try (Warren warren = Warren.connect(Args.address())) {
      long stored; // what an application keeps in its own store
      CountDownLatch halfRead = new CountDownLatch(half);
      List<Delivery> firstRead = new CopyOnWriteArrayList<>();
      try (Subscriber reader =
          warren.subscribe(
              Subscriber.Options.stream(stream).startAt(StreamOffsets.first()).maxInFlight(1),
              d -> {
                if (firstRead.size() < half) {
                  firstRead.add(d);
                  System.out.println("read  " + text(d) + " at offset " + d.getStreamOffset());
                  halfRead.countDown();
                }
              })) {
        reader.awaitSubscribed(Duration.ofSeconds(10)); // declares the stream
        for (int i = 0; i < count; i++) {
          warren.publisher()
              .publishToQueue(stream, ("event-" + i).getBytes(StandardCharsets.UTF_8))
              .get(10, TimeUnit.SECONDS);
        }
        if (!halfRead.await(10, TimeUnit.SECONDS)) throw new IllegalStateException("nothing read");
        stored = firstRead.get(half - 1).getStreamOffset() + 1;
        System.out.println("stored offset " + stored);
      }
      CountDownLatch rest = new CountDownLatch(count - half);
      try (Subscriber resumed =
          warren.subscribe(
              Subscriber.Options.stream(stream).resumeFrom(stored),
              d -> {
                System.out.println("resumed " + text(d) + " at offset " + d.getStreamOffset());
                rest.countDown();
              })) {
        resumed.awaitSubscribed(Duration.ofSeconds(10));
        if (!rest.await(10, TimeUnit.SECONDS)) throw new IllegalStateException("resume stalled");
      }
    }
  }

  private static String text(Delivery d) {
    return d.getPayload().toString(StandardCharsets.UTF_8);
  }
}
