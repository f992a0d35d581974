package warren

import (
	"context"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
)

// Client holds one connection to a warrend (or a load balancer in front of
// several) and the three service stubs. It is safe for concurrent use.
type Client struct {
	Conn      *grpc.ClientConn
	Messaging warrenv1.MessagingServiceClient
	Election  warrenv1.ElectionServiceClient
	Config    warrenv1.ConfigServiceClient
}

// Dial connects to address ("host:port"). Without options it uses a
// plaintext connection; DialSecure (or DialFromEnv) adds TLS and a token.
// Like grpc.DialContext it does not wait for the connection unless asked to
// (grpc.WithBlock()): the first RPC fails with UNAVAILABLE if the server is
// down, which the wrapper's retry loops handle.
func Dial(ctx context.Context, address string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithInsecure()}
	}
	conn, err := grpc.DialContext(ctx, address, opts...)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// NewClient wraps an existing connection; closing it stays the caller's job.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{
		Conn:      conn,
		Messaging: warrenv1.NewMessagingServiceClient(conn),
		Election:  warrenv1.NewElectionServiceClient(conn),
		Config:    warrenv1.NewConfigServiceClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// NewPublisher returns a Publisher on this client's connection.
func (c *Client) NewPublisher(opts PublisherOptions) *Publisher {
	return NewPublisher(c.Messaging, opts)
}

// NewSubscriber returns a Subscriber on this client's connection.
func (c *Client) NewSubscriber(opts SubscriberOptions) *Subscriber {
	return NewSubscriber(c.Messaging, opts)
}

// Campaign starts an Elector on this client's connection.
func (c *Client) Campaign(ctx context.Context, opts ElectorOptions) *Elector {
	return Campaign(ctx, c.Election, opts)
}

// WatchConfig starts a ConfigWatcher on this client's connection.
func (c *Client) WatchConfig(ctx context.Context, opts ConfigWatcherOptions) *ConfigWatcher {
	return WatchConfig(ctx, c.Config, opts)
}
