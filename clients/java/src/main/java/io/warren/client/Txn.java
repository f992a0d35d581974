package io.warren.client;

import com.google.protobuf.ByteString;
import io.warren.v1.DeleteConfigRequest;
import io.warren.v1.PutConfigRequest;
import io.warren.v1.TxnCheck;
import io.warren.v1.TxnOp;
import java.nio.charset.StandardCharsets;

/**
 * Makes the checks and ops of {@link Warren#txn}:
 *
 * <pre>{@code
 * warren.txn(
 *     List.of(Txn.version("app/schema", 7), Txn.absent("app/lock")),
 *     List.of(Txn.put("app/schema", "8"), Txn.delete("app/old")),
 *     elector.fence());
 * }</pre>
 *
 * Build a {@link TxnOp} of your own for create-only puts and version-checked
 * ops (their {@code fence} must stay unset: the transaction's fence covers
 * every op).
 */
public final class Txn {
  private Txn() {}

  /** The key exists at exactly {@code version}. */
  public static TxnCheck version(String key, long version) {
    return TxnCheck.newBuilder().setKey(key).setVersion(version).build();
  }

  /** The key exists. */
  public static TxnCheck exists(String key) {
    return TxnCheck.newBuilder().setKey(key).setExists(true).build();
  }

  /** The key does not exist. */
  public static TxnCheck absent(String key) {
    return TxnCheck.newBuilder().setKey(key).setExists(false).build();
  }

  /** Writes the key (creating it and its namespace parents). */
  public static TxnOp put(String key, byte[] value) {
    return TxnOp.newBuilder()
        .setPut(PutConfigRequest.newBuilder().setKey(key).setValue(ByteString.copyFrom(value)))
        .build();
  }

  public static TxnOp put(String key, String value) {
    return put(key, value.getBytes(StandardCharsets.UTF_8));
  }

  /** Deletes the key (one with children becomes a namespace node). */
  public static TxnOp delete(String key) {
    return TxnOp.newBuilder().setDelete(DeleteConfigRequest.newBuilder().setKey(key)).build();
  }
}
