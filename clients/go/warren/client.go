package warren

import (
	"context"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
)

// Client holds one connection to a warrend (or a load balancer in front of
// several) and the four service stubs. It is safe for concurrent use.
type Client struct {
	Conn      *grpc.ClientConn
	Messaging warrenv1.MessagingServiceClient
	Election  warrenv1.ElectionServiceClient
	Config    warrenv1.ConfigServiceClient
	Lock      warrenv1.LockServiceClient
}

// Dial connects to address ("host:port"). Without options it uses a
// plaintext connection; DialSecure (or DialFromEnv) adds TLS and a token.
// Like grpc.DialContext it does not wait for the connection unless asked to
// (grpc.WithBlock()): the first RPC fails with UNAVAILABLE if the server is
// down, which the wrapper's retry loops handle.
//
// The connection's reconnect backoff starts at 100 ms and is capped at 2 s
// (clients/retry-policy.json, "channel"), instead of gRPC's 1 s growing to
// 120 s, so that the wrappers are back within seconds of a long outage; an
// option in opts may override it.
func Dial(ctx context.Context, address string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithInsecure()}
	}
	opts = append(channelOptions(), opts...)
	conn, err := grpc.DialContext(ctx, address, opts...)
	if err != nil {
		return nil, err
	}
	return NewClient(conn), nil
}

// NewClient wraps an existing connection; closing it stays the caller's job.
// The wrappers made from the Client reset the connection's reconnect
// backoff whenever they retry; a connection dialed without Dial keeps its
// own reconnect backoff (see channelOptions for what Dial sets).
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{
		Conn:      conn,
		Messaging: warrenv1.NewMessagingServiceClient(conn),
		Election:  warrenv1.NewElectionServiceClient(conn),
		Config:    warrenv1.NewConfigServiceClient(conn),
		Lock:      warrenv1.NewLockServiceClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// NewPublisher returns a Publisher on this client's connection.
func (c *Client) NewPublisher(opts PublisherOptions) *Publisher {
	p := NewPublisher(c.Messaging, opts)
	p.reconnect = c.Conn.ResetConnectBackoff
	return p
}

// NewSubscriber returns a Subscriber on this client's connection.
func (c *Client) NewSubscriber(opts SubscriberOptions) *Subscriber {
	s := NewSubscriber(c.Messaging, opts)
	s.reconnect = c.Conn.ResetConnectBackoff
	return s
}

// Campaign starts an Elector on this client's connection.
func (c *Client) Campaign(ctx context.Context, opts ElectorOptions) *Elector {
	return campaign(ctx, c.Election, opts, c.Conn.ResetConnectBackoff)
}

// WatchConfig starts a ConfigWatcher on this client's connection.
func (c *Client) WatchConfig(ctx context.Context, opts ConfigWatcherOptions) *ConfigWatcher {
	return watchConfig(ctx, c.Config, opts, c.Conn.ResetConnectBackoff)
}

// NewLocker returns a Locker on this client's connection.
func (c *Client) NewLocker(opts LockerOptions) *Locker {
	l := NewLocker(c.Lock, opts)
	l.reconnect = c.Conn.ResetConnectBackoff
	return l
}

// HoldKey starts a Registration on this client's connection.
func (c *Client) HoldKey(ctx context.Context, opts RegistrationOptions) *Registration {
	return holdKey(ctx, c.Config, opts, c.Conn.ResetConnectBackoff)
}

// PutConfig writes a key (see the package-level PutConfig).
func (c *Client) PutConfig(ctx context.Context, key string, value []byte, opts ...ConfigOption) (*warrenv1.ConfigEntry, error) {
	return PutConfig(ctx, c.Config, key, value, opts...)
}

// DeleteConfig deletes a key (see the package-level DeleteConfig).
func (c *Client) DeleteConfig(ctx context.Context, key string, opts ...ConfigOption) error {
	return DeleteConfig(ctx, c.Config, key, opts...)
}

// Txn applies checks and ops all or nothing (see the package-level Txn).
func (c *Client) Txn(ctx context.Context, checks []*warrenv1.TxnCheck, ops []*warrenv1.TxnOp,
	fence *warrenv1.Fence) ([]*warrenv1.ConfigEntry, error) {
	return Txn(ctx, c.Config, checks, ops, fence)
}
