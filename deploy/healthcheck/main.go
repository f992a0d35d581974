// warren-healthcheck asks a gRPC server for grpc.health.v1.Health/Check and
// exits 0 when the answer is SERVING. It ships in the warrend image for the
// chart's `helm test` hook (and for exec probes on clusters without native
// gRPC probes). Built in GOPATH mode against Debian's golang-google-grpc-dev.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "host:port of the gRPC server")
	service := flag.String("service", "", "service name to check (empty: the whole server)")
	rpcTimeout := flag.Duration("rpc-timeout", 3*time.Second, "deadline of each check")
	wait := flag.Duration("wait", 0, "keep retrying until SERVING or this long has passed")
	flag.Parse()

	deadline := time.Now().Add(*wait)
	for {
		status, err := check(*addr, *service, *rpcTimeout)
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

func check(addr, service string, timeout time.Duration) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, addr, grpc.WithInsecure(), grpc.WithBlock())
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
