package io.warren.examples;

import io.warren.client.Subscriber;
import io.warren.client.Warren;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Publishes "Hello, Zookeeper & RabbitMQ!" to a queue and receives it.
 *
 *   examples/run.sh hello [--queue=test_queue]     (or WARREN_QUEUE)
 */
public final class HelloExample {
  public static void main(String[] argv) throws Exception {
    Args args = new Args(argv);
    String queue = args.get("queue", "WARREN_QUEUE", "test_queue");
    String text = "Hello, Zookeeper & RabbitMQ!";
    try (Warren warren = Warren.connect(Args.address())) {
      CompletableFuture<String> received = new CompletableFuture<>();
      // Subscribing to a queue by name declares it durable when it is missing,
      // so subscribe first and publish only once the subscription is
      // established: before that the message has nowhere to go (and, being
      // mandatory, would fail with FAILED_PRECONDITION).
      try (Subscriber sub = warren.subscribe(Subscriber.Options.queue(queue),
          d -> received.complete(d.getPayload().toString(StandardCharsets.UTF_8)
              + "  (message id " + d.getMessageId() + ")"))) {
        System.out.println("subscribed to queue " + sub.awaitSubscribed(Duration.ofSeconds(10)));
        String id = warren.publisher()
            .publishToQueue(queue, text.getBytes(StandardCharsets.UTF_8))
            .get(10, TimeUnit.SECONDS);
        System.out.println("published: " + text + "  (message id " + id + ")");
        System.out.println("received:  " + received.get(10, TimeUnit.SECONDS));
      }
    }
  }
}
