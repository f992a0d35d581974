package warren_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The TLS + auth warrends of `scripts/with-warrend.sh --secure`:
// WARREN_TEST_TLS_ADDRESS takes an optional client certificate,
// WARREN_TEST_MTLS_ADDRESS requires one.

func secureEnv(t *testing.T) (ca, cert, key, token string) {
	t.Helper()
	needEnv(t, "WARREN_TEST_TLS_ADDRESS", "WARREN_TEST_MTLS_ADDRESS", "WARREN_TEST_TLS_CA",
		"WARREN_TEST_TLS_CERT", "WARREN_TEST_TLS_KEY", "WARREN_TEST_TOKEN")
	return os.Getenv("WARREN_TEST_TLS_CA"), os.Getenv("WARREN_TEST_TLS_CERT"),
		os.Getenv("WARREN_TEST_TLS_KEY"), os.Getenv("WARREN_TEST_TOKEN")
}

func dialSecure(t *testing.T, address string, sec warren.Security) *warren.Client {
	t.Helper()
	c, err := warren.DialSecure(context.Background(), address, sec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func getConfig(c *warren.Client, key string) (*warrenv1.GetConfigResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Config.GetConfig(ctx, &warrenv1.GetConfigRequest{Key: key})
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("got %v, want %v", err, want)
	}
}

func TestTLSWithTokenSucceedsAndWithoutIsUnauthenticated(t *testing.T) {
	t.Parallel()
	ca, _, _, token := secureEnv(t)
	address := os.Getenv("WARREN_TEST_TLS_ADDRESS")
	key := unique("go-secure") + "/k"
	client := dialSecure(t, address, warren.Security{CAFile: ca, Token: token})
	put(t, client.Config, key, "over tls")
	if r, err := getConfig(client, key); err != nil || string(r.Entry.Value) != "over tls" {
		t.Fatalf("get over TLS with a token: %v %v", r, err)
	}
	_, err := getConfig(dialSecure(t, address, warren.Security{CAFile: ca}), key)
	wantCode(t, err, codes.Unauthenticated)
	if !strings.Contains(err.Error(), "missing bearer token") {
		t.Fatalf("without a token: %v", err)
	}
	_, err = getConfig(dialSecure(t, address, warren.Security{CAFile: ca, Token: "wrong-token-000000000000"}), key)
	wantCode(t, err, codes.Unauthenticated)
}

func TestMutualTLSNeedsTheClientCertificate(t *testing.T) {
	t.Parallel()
	ca, cert, keyFile, token := secureEnv(t)
	address := os.Getenv("WARREN_TEST_MTLS_ADDRESS")
	key := unique("go-mtls") + "/k"
	_, err := getConfig(dialSecure(t, address, warren.Security{CAFile: ca, Token: token}), key)
	wantCode(t, err, codes.Unavailable)
	// The certificate alone authenticates (principal CN=warren-test-client).
	client := dialSecure(t, address, warren.Security{CAFile: ca, CertFile: cert, KeyFile: keyFile})
	put(t, client.Config, key, "mutual")
	if r, err := getConfig(client, key); err != nil || string(r.Entry.Value) != "mutual" {
		t.Fatalf("get over mutual TLS: %v %v", r, err)
	}
}

func TestTheServersCertificateIsVerified(t *testing.T) {
	t.Parallel()
	ca, _, _, token := secureEnv(t)
	address := os.Getenv("WARREN_TEST_TLS_ADDRESS")
	key := unique("go-verify") + "/k"
	// Not signed by the system's CAs; not issued to another name.
	_, err := getConfig(dialSecure(t, address, warren.Security{TLS: true, Token: token}), key)
	wantCode(t, err, codes.Unavailable)
	_, err = getConfig(dialSecure(t, address, warren.Security{CAFile: ca, ServerName: "other.example", Token: token}), key)
	wantCode(t, err, codes.Unavailable)
	// The certificate names localhost too.
	_, err = getConfig(dialSecure(t, address, warren.Security{CAFile: ca, ServerName: "localhost", Token: token}), key)
	wantCode(t, err, codes.NotFound)
}

func TestWatchStreamCarriesTheToken(t *testing.T) {
	t.Parallel()
	ca, _, _, token := secureEnv(t)
	client := dialSecure(t, os.Getenv("WARREN_TEST_TLS_ADDRESS"), warren.Security{CAFile: ca, Token: token})
	key := unique("go-secure-watch") + "/k"
	put(t, client.Config, key, "one")
	var log changeLog
	w := client.WatchConfig(context.Background(), warren.ConfigWatcherOptions{Key: key, OnChange: log.record})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	put(t, client.Config, key, "two")
	waitFor(t, 20*time.Second, "the change", func() bool { return log.len() >= 2 })
	if got := strings.Join(log.since(0), ", "); got != "put "+key+"=one (initial), put "+key+"=two" {
		t.Fatalf("changes: %s", got)
	}
}

// Not parallel: t.Setenv.
func TestDialFromEnvReadsTheCppClientNames(t *testing.T) {
	ca, cert, keyFile, token := secureEnv(t)
	key := unique("go-secure-env") + "/k"
	for _, v := range []string{"WARREN_TLS", "WARREN_TLS_SERVER_NAME"} {
		t.Setenv(v, "")
	}
	t.Setenv("WARREN_ADDRESS", os.Getenv("WARREN_TEST_TLS_ADDRESS"))
	t.Setenv("WARREN_TLS_CA", ca)
	t.Setenv("WARREN_TLS_CERT", "")
	t.Setenv("WARREN_TLS_KEY", "")
	t.Setenv("WARREN_TOKEN", token)
	client, err := warren.DialFromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	put(t, client.Config, key, "env")

	t.Setenv("WARREN_ADDRESS", os.Getenv("WARREN_TEST_MTLS_ADDRESS"))
	t.Setenv("WARREN_TLS_CERT", cert)
	t.Setenv("WARREN_TLS_KEY", keyFile)
	t.Setenv("WARREN_TOKEN", "")
	mutual, err := warren.DialFromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer mutual.Close()
	if r, err := getConfig(mutual, key); err != nil || string(r.Entry.Value) != "env" {
		t.Fatalf("get with the environment's certificate: %v %v", r, err)
	}
}

func TestSecurityRejectsBadFiles(t *testing.T) {
	t.Parallel()
	if _, err := (warren.Security{CertFile: "client.crt"}).DialOptions(); err == nil ||
		!strings.Contains(err.Error(), "certificate and key go together") {
		t.Fatalf("a certificate without its key: %v", err)
	}
	if _, err := (warren.Security{CAFile: "/nonexistent/ca.crt"}).DialOptions(); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/ca.crt") {
		t.Fatalf("a missing CA file: %v", err)
	}
}

// echoAuthorization answers with the authorization metadata a call carried.
type echoAuthorization struct {
	warrenv1.UnimplementedConfigServiceServer
}

func authorization(ctx context.Context) []byte {
	md, _ := metadata.FromIncomingContext(ctx)
	return []byte(strings.Join(md.Get("authorization"), ","))
}

func (echoAuthorization) GetConfig(ctx context.Context, r *warrenv1.GetConfigRequest) (*warrenv1.GetConfigResponse, error) {
	return &warrenv1.GetConfigResponse{Entry: &warrenv1.ConfigEntry{Key: r.Key, Value: authorization(ctx)}}, nil
}

func (echoAuthorization) WatchConfig(r *warrenv1.WatchConfigRequest, s warrenv1.ConfigService_WatchConfigServer) error {
	return s.Send(&warrenv1.WatchConfigResponse{InitialState: true, Events: []*warrenv1.ConfigEvent{
		{Entry: &warrenv1.ConfigEntry{Key: r.Key, Value: authorization(s.Context())}}}})
}

// Over plaintext the token is sent too (RequireTransportSecurity false), on
// unary calls and streams alike.
func TestPlaintextTokenOnUnaryAndStream(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	warrenv1.RegisterConfigServiceServer(server, echoAuthorization{})
	go server.Serve(lis)
	defer server.Stop()
	client := dialSecure(t, lis.Addr().String(), warren.Security{Token: "t0ken-for-plaintext"})
	r, err := getConfig(client, "k")
	if err != nil || string(r.Entry.Value) != "Bearer t0ken-for-plaintext" {
		t.Fatalf("unary: %v %v", r, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.Config.WatchConfig(ctx, &warrenv1.WatchConfigRequest{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || string(first.Events[0].Entry.Value) != "Bearer t0ken-for-plaintext" {
		t.Fatalf("stream: %v %v", first, err)
	}
}
