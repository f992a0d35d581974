package warren

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/ioutil"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// DefaultAddress is the address DialFromEnv uses without WARREN_ADDRESS.
const DefaultAddress = "127.0.0.1:50051"

// Security says how to reach a warrend with TLS (tls_cert_file) and
// authentication (auth_tokens_file) on. The zero value is plaintext without
// a token.
type Security struct {
	// TLS turns TLS on with the system's CAs; any of CAFile, CertFile,
	// KeyFile or ServerName turns it on too.
	TLS bool
	// CAFile is the PEM CA bundle that signs the server's certificate;
	// empty: the system's.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key, for a
	// server with tls_client_ca_file (mutual TLS); both or neither.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry when it
	// is not the host of the address (e.g. dialing an IP).
	ServerName string
	// Token, when set, is sent on every call, streams included, as
	// "authorization: Bearer <token>".
	Token string
}

// SecurityFromEnv reads the variables the C++ client and the CLI read:
// WARREN_TLS_CA, WARREN_TLS_CERT, WARREN_TLS_KEY, WARREN_TLS_SERVER_NAME,
// WARREN_TLS (TLS unless empty, "0" or "false") and WARREN_TOKEN.
func SecurityFromEnv() Security {
	on := os.Getenv("WARREN_TLS")
	return Security{
		TLS:        on != "" && on != "0" && on != "false",
		CAFile:     os.Getenv("WARREN_TLS_CA"),
		CertFile:   os.Getenv("WARREN_TLS_CERT"),
		KeyFile:    os.Getenv("WARREN_TLS_KEY"),
		ServerName: os.Getenv("WARREN_TLS_SERVER_NAME"),
		Token:      os.Getenv("WARREN_TOKEN"),
	}
}

func (s Security) usesTLS() bool {
	return s.TLS || s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != ""
}

// DialOptions returns the transport credentials (TLS or plaintext) and,
// with a Token, the per-call credentials that carry it. An unreadable or
// invalid file is an error naming it.
func (s Security) DialOptions() ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if s.usesTLS() {
		config, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		opts = append(opts, grpc.WithInsecure())
	}
	if s.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(BearerToken(s.Token, s.usesTLS())))
	}
	return opts, nil
}

func (s Security) tlsConfig() (*tls.Config, error) {
	config := &tls.Config{ServerName: s.ServerName, MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := ioutil.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read the TLS CA file: %w", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in the TLS CA file %s", s.CAFile)
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("TLS client certificate and key go together: give both or neither")
	}
	if s.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load the TLS client certificate %s and key %s: %w",
				s.CertFile, s.KeyFile, err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// BearerToken returns per-call credentials sending "authorization: Bearer
// <token>". With requireTLS false gRPC also sends it over plaintext, where
// anyone on the path can read it: only for loopback or a trusted network.
func BearerToken(token string, requireTLS bool) credentials.PerRPCCredentials {
	return bearerToken{header: map[string]string{"authorization": "Bearer " + token}, requireTLS: requireTLS}
}

type bearerToken struct {
	header     map[string]string
	requireTLS bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return b.header, nil
}

func (b bearerToken) RequireTransportSecurity() bool { return b.requireTLS }

// DialSecure is Dial with the credentials of sec; opts are added after them.
func DialSecure(ctx context.Context, address string, sec Security, opts ...grpc.DialOption) (*Client, error) {
	secure, err := sec.DialOptions()
	if err != nil {
		return nil, err
	}
	return Dial(ctx, address, append(secure, opts...)...)
}

// DialFromEnv dials WARREN_ADDRESS (else DefaultAddress) with
// SecurityFromEnv(), like the C++ client's MakeChannelFromEnv.
func DialFromEnv(ctx context.Context, opts ...grpc.DialOption) (*Client, error) {
	address := os.Getenv("WARREN_ADDRESS")
	if address == "" {
		address = DefaultAddress
	}
	return DialSecure(ctx, address, SecurityFromEnv(), opts...)
}
