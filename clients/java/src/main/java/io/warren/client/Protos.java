package io.warren.client;

import java.time.Duration;

/** Conversions to protobuf well-known types (protobuf-util would pull in Gson). */
final class Protos {
  private Protos() {}

  static com.google.protobuf.Duration duration(Duration d) {
    return com.google.protobuf.Duration.newBuilder()
        .setSeconds(d.getSeconds())
        .setNanos(d.getNano())
        .build();
  }
}
