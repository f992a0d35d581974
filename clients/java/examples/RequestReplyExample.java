package io.warren.examples;

import io.warren.client.Responder;
import io.warren.client.Subscriber;
import io.warren.client.Warren;
import io.warren.v1.Delivery;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeoutException;

/**
 * Request/reply: a responder answers requests on a queue, and a caller asks
 * it. The responder's handler returns the reply; the wrapper sends it to the
 * caller's reply address with the request's correlation id, then acks the
 * request. Call() is never retried (the request may have been handled).
 *
 *   examples/run.sh request-reply [--queue=uppercase] [--text=hello]
 */
public final class RequestReplyExample {
  public static void main(String[] argv) throws Exception {
    Args args = new Args(argv);
    String queue = args.get("queue", "WARREN_QUEUE", "uppercase");
    String text = args.get("text", null, "hello, request/reply");
    try (Warren warren = Warren.connect(Args.address());
        Responder responder =
            warren.respond(
                Subscriber.Options.queue(queue),
                request ->
                    Responder.Reply.of(
                            request.getPayload().toString(StandardCharsets.UTF_8).toUpperCase()
                                .getBytes(StandardCharsets.UTF_8))
                        .contentType("text/plain"))) {
      System.out.println("responder on queue " + responder.awaitSubscribed(Duration.ofSeconds(10)));
      try {
        Delivery reply =
            warren.call(queue, text.getBytes(StandardCharsets.UTF_8), Duration.ofSeconds(10));
        System.out.println("reply: " + reply.getPayload().toString(StandardCharsets.UTF_8));
      } catch (TimeoutException e) {
        System.out.println("no reply: " + e.getMessage());
        System.exit(1);
      }
    }
  }
}
