package io.warren.client;

import io.grpc.CallCredentials;
import io.grpc.ChannelCredentials;
import io.grpc.CompositeChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.Metadata;
import io.grpc.TlsChannelCredentials;
import java.io.File;
import java.io.IOException;
import java.util.Map;
import java.util.concurrent.Executor;

/**
 * How to reach a warrend with TLS ({@code tls_cert_file}) and authentication
 * ({@code auth_tokens_file}) on: the server's CA, a client certificate for
 * mutual TLS, a bearer token. The default is plaintext without a token.
 *
 * <pre>{@code
 * Warren.connect("warren.example.com:50051", new Security()
 *     .caFile("pki/ca.crt").clientCertificate("pki/client.crt", "pki/client.key")
 *     .token(System.getenv("WARREN_TOKEN")));
 * }</pre>
 */
public final class Security {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private boolean tls;
  private String caFile;
  private String certFile;
  private String keyFile;
  private String serverName;
  private String token;

  /** TLS with the system's CAs (implied by every TLS setting below). */
  public Security tls() {
    this.tls = true;
    return this;
  }

  /** The PEM CA bundle that signs the server's certificate. */
  public Security caFile(String path) {
    this.caFile = emptyToNull(path);
    return this;
  }

  /** A PEM client certificate and key, for a server with tls_client_ca_file. */
  public Security clientCertificate(String certPath, String keyPath) {
    this.certFile = emptyToNull(certPath);
    this.keyFile = emptyToNull(keyPath);
    return this;
  }

  /** The name the server's certificate carries, when dialing another (e.g. an IP). */
  public Security serverName(String name) {
    this.serverName = emptyToNull(name);
    return this;
  }

  /** Sent on every call, streams included, as "authorization: Bearer TOKEN". */
  public Security token(String token) {
    this.token = emptyToNull(token);
    return this;
  }

  String serverName() {
    return serverName;
  }

  /**
   * From the variables the C++ client and the CLI read: WARREN_TLS_CA,
   * WARREN_TLS_CERT, WARREN_TLS_KEY, WARREN_TLS_SERVER_NAME, WARREN_TLS (TLS
   * unless empty, "0" or "false") and WARREN_TOKEN.
   */
  public static Security fromEnv(Map<String, String> env) {
    Security s = new Security()
        .caFile(env.get("WARREN_TLS_CA"))
        .clientCertificate(env.get("WARREN_TLS_CERT"), env.get("WARREN_TLS_KEY"))
        .serverName(env.get("WARREN_TLS_SERVER_NAME"))
        .token(env.get("WARREN_TOKEN"));
    String on = env.getOrDefault("WARREN_TLS", "");
    if (!on.isEmpty() && !on.equals("0") && !on.equals("false")) s.tls();
    return s;
  }

  public static Security fromEnv() {
    return fromEnv(System.getenv());
  }

  boolean usesTls() {
    return tls || caFile != null || certFile != null || keyFile != null || serverName != null;
  }

  /**
   * The channel credentials: TLS ({@link TlsChannelCredentials}) or
   * plaintext, combined with {@link #bearerToken} when there is a token.
   *
   * @throws IllegalArgumentException naming a file that cannot be read, or a
   *     certificate without its key
   */
  public ChannelCredentials channelCredentials() {
    ChannelCredentials transport;
    if (usesTls()) {
      if ((certFile == null) != (keyFile == null)) {
        throw new IllegalArgumentException(
            "TLS client certificate and key go together: give both or neither");
      }
      OpenSslLoader.load();
      TlsChannelCredentials.Builder b = TlsChannelCredentials.newBuilder();
      try {
        if (caFile != null) b.trustManager(new File(caFile));
      } catch (IOException | RuntimeException e) {
        throw new IllegalArgumentException("cannot read the TLS CA file " + caFile + ": " + e, e);
      }
      try {
        if (certFile != null) b.keyManager(new File(certFile), new File(keyFile));
      } catch (IOException | RuntimeException e) {
        throw new IllegalArgumentException(
            "cannot read the TLS client certificate " + certFile + " or key " + keyFile + ": " + e, e);
      }
      transport = b.build();
    } else {
      transport = InsecureChannelCredentials.create();
    }
    // grpc-java applies call credentials over plaintext too (it leaves the
    // choice to them); there anyone on the path can read the token, so keep
    // such a listener on loopback or a private network.
    return token == null ? transport : CompositeChannelCredentials.create(transport, bearerToken(token));
  }

  /** Call credentials adding "authorization: Bearer TOKEN" to every call. */
  public static CallCredentials bearerToken(String token) {
    String value = "Bearer " + token;
    return new CallCredentials() {
      @Override
      public void applyRequestMetadata(RequestInfo info, Executor executor, MetadataApplier applier) {
        Metadata headers = new Metadata();
        headers.put(AUTHORIZATION, value);
        applier.apply(headers);
      }

      @Override
      public void thisUsesUnstableApi() {}
    };
  }

  /**
   * gRPC needs ALPN for TLS, which Debian's netty offers only through
   * OpenSSL (netty-tcnative: its JDK engine has ALPN patched out). Debian
   * installs the JNI library as libnetty-tcnative.so, a name netty's loader
   * does not look for and the library itself refuses to be loaded under (it
   * reads its own file name, symlinks resolved). So a copy named
   * libnetty_tcnative.so is loaded (from a temporary folder, deleted at
   * once, as netty does with the libraries it bundles) before netty checks
   * for OpenSSL; netty then finds it loaded. Where netty finds its own, or
   * the library is not installed, this does nothing.
   */
  private static final class OpenSslLoader {
    private static boolean done;

    static synchronized void load() {
      if (done) return;
      done = true;
      String sep = File.pathSeparator;
      String dirs = System.getProperty("java.library.path", "") + sep
          + "/usr/lib/x86_64-linux-gnu/jni" + sep + "/usr/lib/jni";
      for (String dir : dirs.split(sep)) {
        if (dir.isEmpty()) continue;
        java.nio.file.Path lib = java.nio.file.Paths.get(dir, "libnetty-tcnative.so");
        if (!java.nio.file.Files.isRegularFile(lib)) continue;
        java.nio.file.Path tmp = null;
        java.nio.file.Path copy = null;
        try {
          tmp = java.nio.file.Files.createTempDirectory("warren-tcnative");
          copy = tmp.resolve("libnetty_tcnative.so");
          java.nio.file.Files.copy(lib, copy);
          System.load(copy.toString());
          return;
        } catch (IOException | UnsatisfiedLinkError e) {
          // Another architecture's or an unusable copy: try the next folder
          // (without OpenSSL, TLS fails with netty's "does not support ALPN").
        } finally {
          try {
            if (copy != null) java.nio.file.Files.deleteIfExists(copy);
            if (tmp != null) java.nio.file.Files.deleteIfExists(tmp);
          } catch (IOException e) {
            // A leftover temporary file is harmless.
          }
        }
      }
    }
  }

  private static String emptyToNull(String s) {
    return s == null || s.isEmpty() ? null : s;
  }
}
