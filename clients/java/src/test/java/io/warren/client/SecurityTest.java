package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;
import static org.junit.Assume.assumeTrue;

import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.warren.v1.ConfigEntry;
import io.warren.v1.ConfigEvent;
import io.warren.v1.ConfigServiceGrpc;
import io.warren.v1.GetConfigRequest;
import io.warren.v1.GetConfigResponse;
import io.warren.v1.WatchConfigRequest;
import io.warren.v1.WatchConfigResponse;
import com.google.protobuf.ByteString;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.After;
import org.junit.Test;

/**
 * TLS, client certificates and bearer tokens, against the TLS + auth warrends
 * of {@code scripts/with-warrend.sh --secure} (WARREN_TEST_TLS_ADDRESS takes
 * an optional client certificate, WARREN_TEST_MTLS_ADDRESS requires one), and
 * the token over plaintext against an in-process server.
 */
public class SecurityTest {
  private static final Duration WAIT = Duration.ofSeconds(20);
  private static final String TLS = System.getenv("WARREN_TEST_TLS_ADDRESS");
  private static final String MTLS = System.getenv("WARREN_TEST_MTLS_ADDRESS");
  private static final String CA = System.getenv("WARREN_TEST_TLS_CA");
  private static final String CERT = System.getenv("WARREN_TEST_TLS_CERT");
  private static final String KEY = System.getenv("WARREN_TEST_TLS_KEY");
  private static final String TOKEN = System.getenv("WARREN_TEST_TOKEN");

  private final List<Warren> clients = new CopyOnWriteArrayList<>();

  private Warren connect(String address, Security security) {
    assumeTrue("needs scripts/with-warrend.sh --secure", TLS != null && MTLS != null);
    Warren w = Warren.connect(address, security);
    clients.add(w);
    return w;
  }

  @After
  public void closeAll() {
    clients.forEach(Warren::close);
  }

  private static Status.Code codeOf(Warren w, String key) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> w.getConfig(key));
    return e.getStatus().getCode();
  }

  private static String value(Warren w, String key) {
    return w.getConfig(key).map(e -> e.getValue().toString(StandardCharsets.UTF_8)).orElse(null);
  }

  @Test
  public void caAndTokenSucceedWithoutTokenUnauthenticated() {
    String key = unique("java-secure") + "/k";
    Warren ok = connect(TLS, new Security().caFile(CA).token(TOKEN));
    ok.putConfig(key, "over tls");
    assertEquals("over tls", value(ok, key));
    Warren none = connect(TLS, new Security().caFile(CA));
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> none.getConfig(key));
    assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
    assertTrue(e.getMessage(), e.getStatus().getDescription().contains("missing bearer token"));
    Warren wrong = connect(TLS, new Security().caFile(CA).token("wrong-token-000000000000"));
    assertEquals(Status.Code.UNAUTHENTICATED, codeOf(wrong, key));
  }

  @Test
  public void mutualTlsNeedsTheClientCertificate() {
    String key = unique("java-mtls") + "/k";
    assertEquals(Status.Code.UNAVAILABLE, codeOf(connect(MTLS, new Security().caFile(CA).token(TOKEN)), key));
    // The certificate alone authenticates (principal CN=warren-test-client).
    Warren ok = connect(MTLS, new Security().caFile(CA).clientCertificate(CERT, KEY));
    ok.putConfig(key, "mutual");
    assertEquals("mutual", value(ok, key));
  }

  @Test
  public void theServersCertificateIsVerified() {
    String key = unique("java-verify") + "/k";
    // Not signed by the system's CAs; not issued to another name.
    assertEquals(Status.Code.UNAVAILABLE, codeOf(connect(TLS, new Security().tls().token(TOKEN)), key));
    assertEquals(Status.Code.UNAVAILABLE,
        codeOf(connect(TLS, new Security().caFile(CA).serverName("other.example").token(TOKEN)), key));
    // The certificate names localhost too (getConfig: empty for a missing key).
    assertTrue(connect(TLS, new Security().caFile(CA).serverName("localhost").token(TOKEN)).getConfig(key).isEmpty());
  }

  @Test
  public void watchStreamCarriesTheToken() throws Exception {
    String key = unique("java-secure-watch") + "/k";
    Warren w = connect(TLS, new Security().caFile(CA).token(TOKEN));
    w.putConfig(key, "one");
    List<ConfigWatcher.Change> changes = new CopyOnWriteArrayList<>();
    try (ConfigWatcher watcher = w.watchConfig(ConfigWatcher.Options.key(key), changes::add)) {
      assertTrue(watcher.awaitInitial(WAIT));
      w.putConfig(key, "two");
      await("the change to two", WAIT, () -> changes.size() >= 2);
      assertEquals("one", changes.get(0).valueUtf8());
      assertEquals("two", changes.get(1).valueUtf8());
    }
  }

  @Test
  public void connectFromEnvReadsTheCppClientNames() {
    assumeTrue("needs scripts/with-warrend.sh --secure", TLS != null && MTLS != null);
    String key = unique("java-secure-env") + "/k";
    Warren viaToken = Warren.connectFromEnv(
        Map.of("WARREN_ADDRESS", TLS, "WARREN_TLS_CA", CA, "WARREN_TOKEN", TOKEN));
    clients.add(viaToken);
    viaToken.putConfig(key, "env");
    Warren viaCert = Warren.connectFromEnv(Map.of("WARREN_ADDRESS", MTLS, "WARREN_TLS_CA", CA,
        "WARREN_TLS_CERT", CERT, "WARREN_TLS_KEY", KEY));
    clients.add(viaCert);
    assertEquals("env", value(viaCert, key));
  }

  @Test
  public void badFilesAreRefusedNamingThem() {
    IllegalArgumentException half = assertThrows(IllegalArgumentException.class,
        () -> new Security().clientCertificate("client.crt", null).channelCredentials());
    assertTrue(half.getMessage(), half.getMessage().contains("certificate and key go together"));
    IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
        () -> new Security().caFile("/nonexistent/ca.crt").channelCredentials());
    assertTrue(missing.getMessage(), missing.getMessage().contains("/nonexistent/ca.crt"));
  }

  /** Answers with the authorization header the call carried. */
  private static final class Echo extends ConfigServiceGrpc.ConfigServiceImplBase {
    static final io.grpc.Context.Key<String> AUTH = io.grpc.Context.key("authorization");

    static ConfigEntry entry(String key) {
      String auth = AUTH.get();
      return ConfigEntry.newBuilder().setKey(key)
          .setValue(ByteString.copyFromUtf8(auth == null ? "" : auth)).build();
    }

    @Override
    public void getConfig(GetConfigRequest r, StreamObserver<GetConfigResponse> out) {
      out.onNext(GetConfigResponse.newBuilder().setEntry(entry(r.getKey())).build());
      out.onCompleted();
    }

    @Override
    public void watchConfig(WatchConfigRequest r, StreamObserver<WatchConfigResponse> out) {
      out.onNext(WatchConfigResponse.newBuilder().setInitialState(true)
          .addEvents(ConfigEvent.newBuilder().setEntry(entry(r.getKey()))).build());
      out.onCompleted();
    }
  }

  @Test
  public void plaintextTokenOnUnaryCallsAndStreams() throws Exception {
    Metadata.Key<String> authorization = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
    ServerInterceptor capture = new ServerInterceptor() {
      @Override
      public <Q, A> ServerCall.Listener<Q> interceptCall(
          ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
        return io.grpc.Contexts.interceptCall(
            io.grpc.Context.current().withValue(Echo.AUTH, headers.get(authorization)), call, headers, next);
      }
    };
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .addService(ServerInterceptors.intercept(new Echo(), capture)).build().start();
    try (Warren w = Warren.connect("127.0.0.1:" + server.getPort(), new Security().token("t0ken-for-plaintext"))) {
      assertEquals("Bearer t0ken-for-plaintext", value(w, "k"));
      Iterator<WatchConfigResponse> stream = w.config().withDeadlineAfter(10, TimeUnit.SECONDS)
          .watchConfig(WatchConfigRequest.newBuilder().setKey("k").build());
      assertEquals("Bearer t0ken-for-plaintext",
          stream.next().getEvents(0).getEntry().getValue().toString(StandardCharsets.UTF_8));
    } finally {
      server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
