package io.warren.client;

import com.google.protobuf.Timestamp;
import io.warren.v1.StreamOffset;
import java.time.Instant;

/**
 * Where a subscription to a stream queue starts ({@link Subscriber.Options#startAt}).
 * A stream keeps its messages after they are acked, so each subscriber reads
 * it from its own offset; see also {@link Subscriber.Options#resumeFrom}.
 */
public final class StreamOffsets {
  private StreamOffsets() {}

  /** The oldest message the stream still keeps. */
  public static StreamOffset first() {
    return StreamOffset.newBuilder().setFirst(true).build();
  }

  /** The last chunk the broker wrote (may hand out a few messages before the newest). */
  public static StreamOffset last() {
    return StreamOffset.newBuilder().setLast(true).build();
  }

  /** Only messages that arrive after the subscription starts (the default). */
  public static StreamOffset next() {
    return StreamOffset.newBuilder().setNext(true).build();
  }

  /** The message with this offset (or the oldest kept); nothing before it. */
  public static StreamOffset offset(long offset) {
    if (offset < 0) throw new IllegalArgumentException("a stream offset is not negative");
    return StreamOffset.newBuilder().setOffset(offset).build();
  }

  /** The messages the broker stored at or after {@code time} (by chunk, second precision). */
  public static StreamOffset timestamp(Instant time) {
    return StreamOffset.newBuilder()
        .setTimestamp(
            Timestamp.newBuilder().setSeconds(time.getEpochSecond()).setNanos(time.getNano()))
        .build();
  }
}
