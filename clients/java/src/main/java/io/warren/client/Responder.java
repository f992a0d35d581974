package io.warren.client;

import com.google.protobuf.ByteString;
import io.warren.v1.Delivery;
import io.warren.v1.PublishRequest;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.logging.Logger;

/**
 * Answers requests ({@link Warren#call}, or any message with a reply address):
 * a {@link Subscriber} whose handler returns the reply. The responder
 * publishes it to the request's {@link Delivery#getReplyTo()} with its
 * {@link Delivery#getCorrelationId()}, and acks the request only once the
 * broker confirmed the reply. A handler that throws (or a reply that cannot
 * be published) nacks the request as the subscriber's options say
 * ({@link Subscriber.Options#requeueOnError}, {@link Subscriber.Options#retryAfter});
 * a request without a reply address is acked and skipped, with a log line.
 * Everything else (retries, {@code close()}) is the subscriber's.
 */
public final class Responder implements AutoCloseable {
  private static final Logger log = Logger.getLogger(Responder.class.getName());

  /** Computes the reply to one request. */
  @FunctionalInterface
  public interface Handler {
    Reply handle(Delivery request) throws Exception;
  }

  /** A reply: payload, and optionally headers and a content type. */
  public static final class Reply {
    final PublishRequest.Builder message = PublishRequest.newBuilder();

    private Reply(byte[] payload) {
      message.setPayload(ByteString.copyFrom(payload));
    }

    public static Reply of(byte[] payload) {
      return new Reply(payload);
    }

    public Reply header(String name, String value) {
      message.putHeaders(name, value);
      return this;
    }

    public Reply headers(Map<String, String> headers) {
      message.putAllHeaders(headers);
      return this;
    }

    public Reply contentType(String contentType) {
      message.setContentType(contentType);
      return this;
    }
  }

  private final Subscriber subscriber;

  Responder(Warren warren, Subscriber.Options options, Handler handler) {
    Publisher replies = warren.publisher();
    this.subscriber =
        warren.subscribe(
            options,
            request -> {
              if (request.getReplyTo().isEmpty()) {
                log.warning(
                    "request " + request.getMessageId() + " has no reply_to: acked without a reply");
                return;
              }
              Reply reply = handler.handle(request);
              try {
                replies.reply(request, reply.message.build()).get();
              } catch (ExecutionException e) {
                if (e.getCause() instanceof Exception) throw (Exception) e.getCause();
                throw e;
              }
            });
  }

  /** Waits until it consumes its queue and returns the queue's name; see {@link Subscriber#awaitSubscribed}. */
  public String awaitSubscribed(Duration timeout) throws TimeoutException, InterruptedException {
    return subscriber.awaitSubscribed(timeout);
  }

  /** Stops as {@link Subscriber#close()} does: running handlers finish and reply first. */
  @Override
  public void close() {
    subscriber.close();
  }
}
