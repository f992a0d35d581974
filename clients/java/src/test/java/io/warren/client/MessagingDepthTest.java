package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static io.warren.client.TestSupport.utf8;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.MethodDescriptor;
import io.warren.v1.Delivery;
import io.warren.v1.ExchangeType;
import io.warren.v1.PublishRequest;
import io.warren.v1.QueueOptions;
import io.warren.v1.SubscribeStart;
import io.warren.v1.TopicBinding;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.junit.Test;

/**
 * Delays, retries, streams, single active consumer, headers routing and
 * request/reply against the live server in WARREN_ADDRESS.
 */
public class MessagingDepthTest extends LiveServerTest {
  private static String text(Delivery d) {
    return d.getPayload().toString(StandardCharsets.UTF_8);
  }

  private static List<Long> offsets(List<Delivery> ds) {
    return ds.stream().map(Delivery::getStreamOffset).collect(Collectors.toList());
  }

  /** Whether {@code offsets} are consecutive: nothing skipped, nothing twice. */
  private static void assertConsecutive(List<Long> offsets) {
    for (int i = 1; i < offsets.size(); i++) {
      assertEquals("offsets " + offsets, offsets.get(i - 1) + 1, (long) offsets.get(i));
    }
  }

  @Test
  public void aDelayedPublishArrivesAfterItsDelay() throws Exception {
    String queue = unique("java-delayed");
    CompletableFuture<Long> arrivedAt = new CompletableFuture<>();
    try (Subscriber sub =
        warren.subscribe(Subscriber.Options.queue(queue), d -> arrivedAt.complete(System.nanoTime()))) {
      sub.awaitSubscribed(WAIT);
      long sentAt = System.nanoTime();
      // The default publisher is mandatory; a delayed publish must not be.
      warren.publisher().publishToQueueDelayed(queue, utf8("later"), Duration.ofMillis(1500)).get();
      long ms = TimeUnit.NANOSECONDS.toMillis(arrivedAt.get(20, TimeUnit.SECONDS) - sentAt);
      assertTrue("arrived after " + ms + " ms, before its 1500 ms delay", ms >= 1500);
      assertTrue("arrived after " + ms + " ms, far after its 1500 ms delay", ms < 5000);
    }
  }

  @Test
  public void delayedPublishesArriveInDelayOrder() throws Exception {
    String queue = unique("java-delay-order");
    List<String> got = new CopyOnWriteArrayList<>();
    try (Subscriber sub = warren.subscribe(Subscriber.Options.queue(queue).maxInFlight(1), d -> got.add(text(d)))) {
      sub.awaitSubscribed(WAIT);
      Publisher pub = warren.publisher();
      List<CompletableFuture<String>> sent = new ArrayList<>();
      sent.add(pub.publishToQueueDelayed(queue, utf8("third"), Duration.ofMillis(2400)));
      sent.add(pub.publishToQueueDelayed(queue, utf8("first"), Duration.ofMillis(400)));
      sent.add(pub.publish(PublishRequest.newBuilder().setRoutingKey(queue)
          .setPayload(ByteString.copyFromUtf8("second"))
          .setDelay(Protos.duration(Duration.ofMillis(1300))).build()));
      for (CompletableFuture<String> f : sent) f.get(20, TimeUnit.SECONDS);
      await("three delayed messages", WAIT, () -> got.size() == 3);
      assertEquals(List.of("first", "second", "third"), got);
    }
  }

  @Test
  public void aRetryAfterComesBackLaterCountedWhileOthersFlow() throws Exception {
    String queue = unique("java-retry");
    List<Delivery> seen = new CopyOnWriteArrayList<>();
    List<Long> seenAt = new CopyOnWriteArrayList<>();
    try (Subscriber sub =
        warren.subscribe(
            Subscriber.Options.queue(queue).maxInFlight(1),
            d -> {
              seen.add(d);
              seenAt.add(System.nanoTime());
              if (text(d).equals("poison") && d.getDeliveryCount() == 0) {
                throw new Subscriber.RetryAfter(Duration.ofMillis(500));
              }
            })) {
      sub.awaitSubscribed(WAIT);
      warren.publisher().publishToQueue(queue, utf8("poison")).get();
      warren.publisher().publishToQueue(queue, utf8("healthy")).get();
      await("the retry", WAIT, () -> seen.size() == 3);
      assertEquals(List.of("poison", "healthy", "poison"),
          seen.stream().map(MessagingDepthTest::text).collect(Collectors.toList()));
      assertEquals(0, seen.get(0).getDeliveryCount());
      assertEquals(1, seen.get(2).getDeliveryCount());
      assertEquals(seen.get(0).getMessageId(), seen.get(2).getMessageId());
      // Shown as it was published, not as the delay queue's dead-letter.
      assertEquals("", seen.get(2).getExchange());
      assertEquals(queue, seen.get(2).getRoutingKey());
      assertFalse("internal headers hidden", seen.get(2).getHeadersMap().containsKey("warren-retries"));
      long ms = TimeUnit.NANOSECONDS.toMillis(seenAt.get(2) - seenAt.get(0));
      assertTrue("came back after " + ms + " ms", ms >= 500 && ms < 3000);
    }
  }

  @Test
  public void twoSubscribersReplayTheSameStreamFromFirst() throws Exception {
    String stream = unique("java-stream");
    List<Delivery> a = new CopyOnWriteArrayList<>();
    List<Delivery> b = new CopyOnWriteArrayList<>();
    try (Subscriber first =
        warren.subscribe(Subscriber.Options.stream(stream).startAt(StreamOffsets.first()).maxInFlight(1), a::add)) {
      first.awaitSubscribed(WAIT); // declares the stream
      for (int i = 0; i < 5; i++) warren.publisher().publishToQueue(stream, utf8("m" + i)).get();
      await("5 messages on the first subscriber", WAIT, () -> a.size() == 5);
      try (Subscriber second =
          warren.subscribe(Subscriber.Options.stream(stream).startAt(StreamOffsets.first()).maxInFlight(1), b::add)) {
        second.awaitSubscribed(WAIT);
        await("5 messages replayed on the second", WAIT, () -> b.size() == 5);
      }
    }
    assertEquals(List.of("m0", "m1", "m2", "m3", "m4"),
        b.stream().map(MessagingDepthTest::text).collect(Collectors.toList()));
    assertEquals(offsets(a), offsets(b));
    assertConsecutive(offsets(b));
  }

  /**
   * Breaks the latest Subscribe call of its channel on demand, as a lost
   * connection would: the call ends with CANCELLED, which the subscriber did
   * not ask for, and later sends on it are dropped as on a dead transport.
   */
  private static final class StreamBreaker implements ClientInterceptor {
    private final AtomicReference<Runnable> breakLatest = new AtomicReference<>();

    void breakSubscribe() {
      breakLatest.get().run();
    }

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(
        MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      ClientCall<Q, R> call = next.newCall(method, options);
      if (!method.getBareMethodName().equals("Subscribe")) return call;
      java.util.concurrent.atomic.AtomicBoolean broken = new java.util.concurrent.atomic.AtomicBoolean();
      ClientCall<Q, R> breakable = new ForwardingClientCall.SimpleForwardingClientCall<Q, R>(call) {
        @Override
        public void sendMessage(Q message) {
          if (!broken.get()) super.sendMessage(message);
        }

        @Override
        public void halfClose() {
          if (!broken.get()) super.halfClose();
        }

        @Override
        public void cancel(String message, Throwable cause) {
          if (!broken.get()) super.cancel(message, cause);
        }
      };
      breakLatest.set(() -> {
        if (broken.compareAndSet(false, true)) call.cancel("test breaks the stream", null);
      });
      return breakable;
    }
  }

  @Test
  public void aBrokenStreamResumesAfterTheLastHandledOffset() throws Exception {
    String stream = unique("java-resume");
    StreamBreaker breaker = new StreamBreaker();
    List<Delivery> got = new CopyOnWriteArrayList<>();
    List<String> queues = new CopyOnWriteArrayList<>();
    try (Warren own = Warren.connect(TestSupport.address(), breaker);
        Subscriber sub =
            own.subscribe(
                Subscriber.Options.stream(stream)
                    .startAt(StreamOffsets.first())
                    .maxInFlight(1)
                    .listener(new Subscriber.Listener() {
                      @Override
                      public void onSubscribed(String queue) {
                        queues.add(queue);
                      }
                    }),
                d -> {
                  got.add(d);
                  if (got.size() == 4) breaker.breakSubscribe(); // mid-way
                })) {
      sub.awaitSubscribed(WAIT);
      for (int i = 0; i < 10; i++) warren.publisher().publishToQueue(stream, utf8("m" + i)).get();
      await("10 messages", WAIT, () -> got.size() >= 10);
      assertEquals("resubscribed once", 2, queues.size());
      assertEquals(10, got.size());
      assertConsecutive(offsets(got));
      assertEquals(got.get(9).getStreamOffset() + 1, sub.resumeOffset().getAsLong());
    }
  }

  @Test
  public void aNewSubscriberResumesFromAStoredOffset() throws Exception {
    String stream = unique("java-stored");
    List<Delivery> before = new CopyOnWriteArrayList<>();
    long stored;
    try (Subscriber sub =
        warren.subscribe(
            Subscriber.Options.stream(stream).startAt(StreamOffsets.first()).maxInFlight(1),
            before::add)) {
      sub.awaitSubscribed(WAIT);
      for (int i = 0; i < 6; i++) warren.publisher().publishToQueue(stream, utf8("m" + i)).get();
      await("6 messages", WAIT, () -> before.size() == 6);
      stored = before.get(2).getStreamOffset() + 1; // as if it had stopped after m2
    }
    List<Delivery> after = new CopyOnWriteArrayList<>();
    try (Subscriber sub =
        warren.subscribe(Subscriber.Options.stream(stream).resumeFrom(stored).maxInFlight(1), after::add)) {
      sub.awaitSubscribed(WAIT);
      await("m3..m5", WAIT, () -> after.size() >= 3);
      warren.publisher().publishToQueue(stream, utf8("m6")).get();
      await("m6", WAIT, () -> after.size() >= 4);
    }
    assertEquals(List.of("m3", "m4", "m5", "m6"),
        after.stream().map(MessagingDepthTest::text).collect(Collectors.toList()));
    assertEquals(stored, after.get(0).getStreamOffset());
  }

  @Test
  public void onlyTheSingleActiveConsumerReceivesUntilItCloses() throws Exception {
    String queue = unique("java-sac");
    Subscriber.Options options =
        new Subscriber.Options(SubscribeStart.newBuilder().setQueue(queue)
            .setQueueOptions(QueueOptions.newBuilder().setSingleActiveConsumer(true)).build())
            .maxInFlight(1);
    List<String> one = new CopyOnWriteArrayList<>();
    List<String> two = new CopyOnWriteArrayList<>();
    Subscriber first = warren.subscribe(options, d -> one.add(text(d)));
    try (Subscriber second = warren.subscribe(options, d -> two.add(text(d)))) {
      first.awaitSubscribed(WAIT);
      second.awaitSubscribed(WAIT);
      for (int i = 0; i < 5; i++) warren.publisher().publishToQueue(queue, utf8("a" + i)).get();
      await("5 messages", WAIT, () -> one.size() + two.size() == 5);
      List<String> active = one.isEmpty() ? two : one;
      assertEquals("one consumer got them all", 5, active.size());
      Subscriber activeSub = active == one ? first : second;
      List<String> standby = active == one ? two : one;
      activeSub.close();
      for (int i = 0; i < 5; i++) warren.publisher().publishToQueue(queue, utf8("b" + i)).get();
      await("the standby takes over", WAIT, () -> standby.size() == 5);
      assertEquals(List.of("b0", "b1", "b2", "b3", "b4"), standby);
    } finally {
      first.close();
    }
  }

  @Test
  public void aPriorityQueueDeliversItsBacklogHighestFirst() throws Exception {
    String queue = unique("java-priority");
    Subscriber.Options options =
        new Subscriber.Options(SubscribeStart.newBuilder().setQueue(queue)
            .setQueueOptions(QueueOptions.newBuilder().setMaxPriority(10)).build())
            .maxInFlight(1);
    try (Subscriber declare = warren.subscribe(options, d -> {})) {
      declare.awaitSubscribed(WAIT);
    }
    Publisher pub = warren.publisher();
    int[] priorities = {1, 5, 3, 9};
    for (int p : priorities) {
      pub.publish(PublishRequest.newBuilder().setRoutingKey(queue).setPriority(p)
          .setPayload(ByteString.copyFromUtf8("p" + p)).build()).get();
    }
    List<String> got = new CopyOnWriteArrayList<>();
    try (Subscriber sub = warren.subscribe(options, d -> got.add(text(d)))) {
      sub.awaitSubscribed(WAIT);
      await("the backlog", WAIT, () -> got.size() == 4);
    }
    assertEquals(List.of("p9", "p5", "p3", "p1"), got);
  }

  @Test
  public void aDeliveryLimitDeadLettersAfterThatManyDeliveries() throws Exception {
    String queue = unique("java-limited");
    String dead = queue + "-dead";
    List<Delivery> deadLettered = new CopyOnWriteArrayList<>();
    List<Delivery> deliveries = new CopyOnWriteArrayList<>();
    // An empty dead_letter_exchange means "drop": dead-letter through a fanout exchange.
    Subscriber.Options deadLetters =
        new Subscriber.Options(SubscribeStart.newBuilder()
            .setTopic(TopicBinding.newBuilder().setExchange(dead)
                .setExchangeType(ExchangeType.EXCHANGE_TYPE_FANOUT))
            .setGroup(dead).build());
    try (Subscriber dlq = warren.subscribe(deadLetters, deadLettered::add)) {
      dlq.awaitSubscribed(WAIT);
      Subscriber.Options options =
          new Subscriber.Options(SubscribeStart.newBuilder().setQueue(queue)
              .setQueueOptions(QueueOptions.newBuilder()
                  .setQueueType(io.warren.v1.QueueType.QUEUE_TYPE_QUORUM)
                  .setDeliveryLimit(3)
                  .setDeadLetterExchange(dead)).build());
      try (Subscriber sub =
          warren.subscribe(
              options,
              d -> {
                deliveries.add(d);
                throw new IllegalStateException("poison"); // nacked with requeue, forever
              })) {
        sub.awaitSubscribed(WAIT);
        warren.publisher().publishToQueue(queue, utf8("poison")).get();
        await("the dead-lettered message", WAIT, () -> deadLettered.size() == 1);
      }
    }
    assertEquals(3, deliveries.size());
    assertEquals(List.of(0, 1, 2),
        deliveries.stream().map(Delivery::getDeliveryCount).collect(Collectors.toList()));
    assertEquals("poison", text(deadLettered.get(0)));
  }

  @Test
  public void headersBindingsMatchAllOrAny() throws Exception {
    String exchange = unique("java-headers");
    List<String> all = new CopyOnWriteArrayList<>();
    List<String> any = new CopyOnWriteArrayList<>();
    Map<String, String> match = Map.of("kind", "order", "region", "eu");
    try (Subscriber allSub = warren.subscribe(headers(exchange, match, false), d -> all.add(text(d)));
        Subscriber anySub = warren.subscribe(headers(exchange, match, true), d -> any.add(text(d)))) {
      allSub.awaitSubscribed(WAIT);
      anySub.awaitSubscribed(WAIT);
      Publisher pub = warren.publisher(new Publisher.Options().mandatory(false));
      pub.publish(withHeaders(exchange, "both", Map.of("kind", "order", "region", "eu"))).get();
      pub.publish(withHeaders(exchange, "kind-only", Map.of("kind", "order"))).get();
      pub.publish(withHeaders(exchange, "neither", Map.of("kind", "refund", "region", "us"))).get();
      pub.publish(withHeaders(exchange, "region-only", Map.of("region", "eu", "x", "y"))).get();
      pub.publish(withHeaders(exchange, "end", match)).get();
      await("the end marker on both", WAIT, () -> all.contains("end") && any.contains("end"));
    }
    assertEquals(List.of("both", "end"), all);
    assertEquals(List.of("both", "kind-only", "region-only", "end"), any);
  }

  private static Subscriber.Options headers(String exchange, Map<String, String> match, boolean any) {
    return new Subscriber.Options(SubscribeStart.newBuilder()
        .setTopic(TopicBinding.newBuilder().setExchange(exchange)
            .setExchangeType(ExchangeType.EXCHANGE_TYPE_HEADERS)
            .putAllMatchHeaders(match).setMatchAny(any))
        .build()).maxInFlight(1); // one at a time: the test checks the order
  }

  private static PublishRequest withHeaders(String exchange, String body, Map<String, String> h) {
    return PublishRequest.newBuilder().setExchange(exchange)
        .setPayload(ByteString.copyFromUtf8(body)).putAllHeaders(h).build();
  }

  @Test
  public void everyCallGetsItsOwnReplyFromThreeResponders() throws Exception {
    String queue = unique("java-rpc");
    List<Responder> responders = new ArrayList<>();
    try {
      for (int r = 0; r < 3; r++) {
        String name = "responder-" + r;
        responders.add(warren.respond(
            Subscriber.Options.queue(queue).maxInFlight(4),
            request -> Responder.Reply.of(utf8("re: " + text(request)))
                .header("answered-by", name).contentType("text/plain")));
      }
      for (Responder r : responders) r.awaitSubscribed(WAIT);
      List<CompletableFuture<Delivery>> calls = new ArrayList<>();
      for (int i = 0; i < 60; i++) {
        calls.add(warren.callAsync(PublishRequest.newBuilder().setRoutingKey(queue)
            .setPayload(ByteString.copyFromUtf8("q" + i)).setMandatory(true).build(),
            Duration.ofSeconds(20)));
      }
      java.util.Set<String> answeredBy = new java.util.HashSet<>();
      for (int i = 0; i < 60; i++) {
        Delivery reply = calls.get(i).get(30, TimeUnit.SECONDS);
        assertEquals("re: q" + i, text(reply));
        assertEquals("text/plain", reply.getContentType());
        answeredBy.add(reply.getHeadersOrDefault("answered-by", ""));
      }
      assertTrue("replies came from " + answeredBy, answeredBy.size() >= 2);
      Delivery one = warren.call(queue, utf8("sync"), Duration.ofSeconds(20));
      assertEquals("re: sync", text(one));
    } finally {
      for (Responder r : responders) r.close();
    }
  }

  @Test
  public void aCallWithoutResponderTimesOut() throws Exception {
    // Not mandatory, to a routing key no queue has: nobody gets the request.
    PublishRequest request = PublishRequest.newBuilder().setRoutingKey(unique("java-nobody"))
        .setPayload(ByteString.copyFromUtf8("anyone?")).build();
    long t0 = System.nanoTime();
    try {
      warren.call(request, Duration.ofSeconds(1));
      fail("a call without a responder got a reply");
    } catch (TimeoutException expected) {
      long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
      assertTrue("timed out after " + ms + " ms", ms >= 900 && ms < 10_000);
    }
  }
}
