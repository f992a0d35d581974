// warren-healthcheck asks a gRPC server for grpc.health.v1.Health/Check and
// exits 0 when the answer is SERVING. It ships in the warrend image for the
// chart's `helm test` hook (and for exec probes on clusters without native
// gRPC probes, and for the chart's probes when warrend serves TLS: native
// gRPC probes speak plaintext only). Built in GOPATH mode against Debian's
// golang-google-grpc-dev.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var (
	useTLS     = flag.Bool("tls", false, "connect with TLS")
	tlsCA      = flag.String("tls-ca", "", "PEM CA bundle that signs the server's certificate (empty: the system's)")
	tlsCert    = flag.String("tls-cert", "", "PEM client certificate, for servers that require one (mutual TLS)")
	tlsKey     = flag.String("tls-key", "", "PEM key of -tls-cert")
	serverName = flag.String("tls-server-name", "", "name the server's certificate must carry (empty: the host of -addr)")
	skipVerify = flag.Bool("tls-skip-verify", false, "do not verify the server's certificate (a probe of its own pod over localhost: the answer matters, not the identity)")
)

// dialOption answers plaintext, or TLS configured by the -tls flags.
func dialOption() (grpc.DialOption, error) {
	if !*useTLS {
		return grpc.WithInsecure(), nil
	}
	config := &tls.Config{ServerName: *serverName, InsecureSkipVerify: *skipVerify}
	if *tlsCA != "" {
		pem, err := ioutil.ReadFile(*tlsCA)
		if err != nil {
			return nil, err
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", *tlsCA)
		}
	}
	if *tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(config)), nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "host:port of the gRPC server")
	service := flag.String("service", "", "service name to check (empty: the whole server)")
	rpcTimeout := flag.Duration("rpc-timeout", 3*time.Second, "deadline of each check")
	wait := flag.Duration("wait", 0, "keep retrying until SERVING or this long has passed")
	flag.Parse()
	option, err := dialOption()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tls: %v\n", err)
		os.Exit(2)
	}

	deadline := time.Now().Add(*wait)
	for {
		status, err := check(*addr, *service, *rpcTimeout, option)
		if err == nil && status == healthpb.HealthCheckResponse_SERVING {
			fmt.Printf("%s %q: SERVING\n", *addr, *service)
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s %q: %v\n", *addr, *service, err)
			} else {
				fmt.Fprintf(os.Stderr, "%s %q: %s\n", *addr, *service, status)
			}
			os.Exit(1)
		}
		time.Sleep(time.Second)
	}
}

func check(addr, service string, timeout time.Duration, option grpc.DialOption) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, addr, option, grpc.WithBlock())
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, err
	}
	return resp.GetStatus(), nil
}
