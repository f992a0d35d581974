package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.utf8;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.StreamObserver;
import io.warren.v1.CallRequest;
import io.warren.v1.CallResponse;
import io.warren.v1.Delivery;
import io.warren.v1.MessagingServiceGrpc;
import io.warren.v1.PublishRequest;
import io.warren.v1.PublishResponse;
import io.warren.v1.SubscribeRequest;
import io.warren.v1.SubscribeResponse;
import io.warren.v1.SubscribeStart;
import io.warren.v1.Subscribed;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeoutException;
import java.util.function.BiConsumer;
import java.util.stream.Collectors;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/**
 * What the wrapper itself decides, against a scripted in-process server:
 * where a stream subscription resumes, which nacks carry a retry delay, what
 * a responder publishes, which publishes are mandatory, and how a call's
 * deadline surfaces.
 */
public class MessagingWrapperTest {
  private static final Duration WAIT = Duration.ofSeconds(10);
  private static final BackoffPolicy FAST =
      new BackoffPolicy(Duration.ofMillis(10), Duration.ofMillis(20));

  /** A MessagingService whose Subscribe streams a test scripts. */
  private static final class FakeMessaging extends MessagingServiceGrpc.MessagingServiceImplBase {
    final List<SubscribeStart> starts = new CopyOnWriteArrayList<>();
    final List<SubscribeRequest> settles = new CopyOnWriteArrayList<>();
    final List<PublishRequest> publishes = new CopyOnWriteArrayList<>();
    /** Called per request of a Subscribe with its number (from 0) and its response stream. */
    volatile BiConsumer<Integer, StreamObserver<SubscribeResponse>> onSettle = (n, out) -> {};
    /** Called when a Subscribe starts, with its number. */
    volatile BiConsumer<Integer, StreamObserver<SubscribeResponse>> onStart = (n, out) -> {};

    @Override
    public StreamObserver<SubscribeRequest> subscribe(StreamObserver<SubscribeResponse> out) {
      return new StreamObserver<SubscribeRequest>() {
        int number = -1;

        @Override
        public void onNext(SubscribeRequest r) {
          if (r.hasStart()) {
            starts.add(r.getStart());
            number = starts.size() - 1;
            out.onNext(SubscribeResponse.newBuilder()
                .setSubscribed(Subscribed.newBuilder().setQueue(r.getStart().getQueue())).build());
            onStart.accept(number, out);
          } else {
            settles.add(r);
            onSettle.accept(number, out);
          }
        }

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {
          out.onCompleted();
        }
      };
    }

    @Override
    public void publish(PublishRequest r, StreamObserver<PublishResponse> out) {
      publishes.add(r);
      out.onNext(PublishResponse.newBuilder().setMessageId(r.getMessageId()).build());
      out.onCompleted();
    }

    @Override
    public void call(CallRequest r, StreamObserver<CallResponse> out) {
      // Never answers: the caller's deadline ends it.
    }
  }

  private static SubscribeResponse delivery(long id, long offset, String body) {
    return SubscribeResponse.newBuilder().setDelivery(Delivery.newBuilder()
        .setDeliveryId(id).setStreamOffset(offset).setPayload(ByteString.copyFromUtf8(body))).build();
  }

  private final FakeMessaging fake = new FakeMessaging();
  private Server server;
  private ManagedChannel channel;
  private Warren warren;

  @Before
  public void start() throws Exception {
    String name = "fake-" + UUID.randomUUID();
    server = InProcessServerBuilder.forName(name).directExecutor().addService(fake).build().start();
    channel = InProcessChannelBuilder.forName(name).directExecutor().build();
    warren = Warren.using(channel);
  }

  @After
  public void stop() {
    warren.close();
    channel.shutdownNow();
    server.shutdownNow();
  }

  @Test
  public void aBrokenStreamResumesAfterTheLastHandledOffsetAndSkipsEarlierOnes() throws Exception {
    fake.onStart = (n, out) -> {
      if (n == 0) {
        out.onNext(delivery(1, 10, "a"));
        out.onNext(delivery(2, 11, "b"));
      } else {
        out.onNext(delivery(1, 11, "b")); // the start of the offset's chunk
        out.onNext(delivery(2, 12, "c"));
      }
    };
    // Once both deliveries of the first stream are acked, the stream breaks.
    fake.onSettle = (n, out) -> {
      if (n == 0 && fake.settles.size() == 2) out.onError(Status.UNAVAILABLE.asRuntimeException());
    };
    List<Long> handled = new CopyOnWriteArrayList<>();
    try (Subscriber sub = warren.subscribe(
        Subscriber.Options.stream("events").startAt(StreamOffsets.first()).maxInFlight(1).backoff(FAST),
        d -> handled.add(d.getStreamOffset()))) {
      await("offset 12", WAIT, () -> handled.contains(12L));
      assertEquals(List.of(10L, 11L, 12L), handled);
      assertTrue(fake.starts.get(0).getOffset().getFirst());
      assertEquals(12, fake.starts.get(1).getOffset().getOffset());
      await("the skipped delivery acked", WAIT, () -> fake.settles.size() == 4);
      assertTrue("offset 11 of the second stream acked unseen", fake.settles.get(2).getAck().getDeliveryIds(0) == 1);
      assertEquals(13, sub.resumeOffset().getAsLong());
    }
  }

  @Test
  public void resumeFromStartsAtTheStoredOffset() throws Exception {
    try (Subscriber sub = warren.subscribe(
        Subscriber.Options.stream("events").resumeFrom(42).backoff(FAST), d -> {})) {
      sub.awaitSubscribed(WAIT);
      assertEquals(42, fake.starts.get(0).getOffset().getOffset());
      assertEquals(42, sub.resumeOffset().getAsLong());
    }
  }

  @Test
  public void handlerErrorsNackWithTheirRetryDelay() throws Exception {
    fake.onStart = (n, out) -> {
      out.onNext(delivery(1, 0, "retry-after"));
      out.onNext(delivery(2, 0, "fails"));
    };
    try (Subscriber sub = warren.subscribe(
        Subscriber.Options.queue("jobs").retryAfter(Duration.ofSeconds(2)).maxInFlight(1),
        d -> {
          if (d.getDeliveryId() == 1) throw new Subscriber.RetryAfter(Duration.ofMillis(500));
          throw new IllegalStateException("fails");
        })) {
      await("two nacks", WAIT, () -> fake.settles.size() == 2);
      assertEquals(500_000_000, fake.settles.get(0).getNack().getRetryAfter().getNanos());
      assertEquals(2, fake.settles.get(1).getNack().getRetryAfter().getSeconds());
      assertFalse(sub.resumeOffset().isPresent()); // not a stream
    }
  }

  @Test
  public void aRetryDelayOnAStreamIsAPlainNack() throws Exception {
    fake.onStart = (n, out) -> out.onNext(delivery(1, 7, "x"));
    try (Subscriber sub = warren.subscribe(Subscriber.Options.stream("events"),
        d -> {
          throw new Subscriber.RetryAfter(Duration.ofSeconds(1));
        })) {
      await("the nack", WAIT, () -> fake.settles.size() == 1);
      assertFalse(fake.settles.get(0).getNack().hasRetryAfter());
      assertEquals(8, sub.resumeOffset().getAsLong());
    }
  }

  @Test
  public void aResponderRepliesToTheRequestThenAcksIt() throws Exception {
    fake.onStart = (n, out) -> {
      out.onNext(SubscribeResponse.newBuilder().setDelivery(Delivery.newBuilder().setDeliveryId(1)
          .setPayload(ByteString.copyFromUtf8("ping")).setReplyTo("amq.rabbitmq.reply-to.abc")
          .setCorrelationId("corr-1")).build());
      out.onNext(delivery(2, 0, "no reply wanted"));
    };
    try (Responder r = warren.respond(Subscriber.Options.queue("rpc").maxInFlight(1),
        request -> Responder.Reply.of(utf8("pong")).header("h", "v").contentType("text/plain"))) {
      r.awaitSubscribed(WAIT);
      await("both requests acked", WAIT, () -> fake.settles.size() == 2);
    }
    assertEquals(1, fake.publishes.size());
    PublishRequest reply = fake.publishes.get(0);
    assertEquals("", reply.getExchange());
    assertEquals("amq.rabbitmq.reply-to.abc", reply.getRoutingKey());
    assertEquals("corr-1", reply.getCorrelationId());
    assertEquals("pong", reply.getPayload().toStringUtf8());
    assertEquals("v", reply.getHeadersOrThrow("h"));
    assertEquals("text/plain", reply.getContentType());
    assertFalse("a reply is not mandatory", reply.getMandatory());
    assertEquals(List.of(1L, 2L), fake.settles.stream()
        .map(s -> s.getAck().getDeliveryIds(0)).collect(Collectors.toList()));
  }

  @Test
  public void aDelayedPublishIsNotMandatory() throws Exception {
    Publisher pub = warren.publisher();
    pub.publishToQueueDelayed("q", utf8("later"), Duration.ofSeconds(3)).get();
    pub.publishToQueue("q", utf8("now")).get();
    assertFalse(fake.publishes.get(0).getMandatory());
    assertEquals(3, fake.publishes.get(0).getDelay().getSeconds());
    assertTrue(fake.publishes.get(1).getMandatory());
  }

  @Test
  public void aCallPastItsDeadlineIsATimeout() throws Exception {
    try {
      warren.call("rpc", utf8("anyone?"), Duration.ofMillis(200));
      fail("the call answered");
    } catch (TimeoutException expected) {
      assertEquals(Status.Code.DEADLINE_EXCEEDED, Status.fromThrowable(expected.getCause()).getCode());
    }
  }
}
