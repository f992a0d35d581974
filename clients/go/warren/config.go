package warren

import (
	"context"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
)

// ConfigOption conditions or shapes a config write: WithFence,
// ExpectVersion, CreateOnly, Recursive.
type ConfigOption interface{ applyConfig(*configWrite) }

type configWrite struct {
	fence           *warrenv1.Fence
	expectedVersion *int64
	createOnly      bool
	recursive       bool
}

type configOptionFunc func(*configWrite)

func (f configOptionFunc) applyConfig(w *configWrite) { f(w) }

// ExpectVersion makes a PutConfig or DeleteConfig a compare-and-set: it
// succeeds only if the key exists at exactly version (FAILED_PRECONDITION
// otherwise).
func ExpectVersion(version int64) ConfigOption {
	return configOptionFunc(func(w *configWrite) { w.expectedVersion = &version })
}

// CreateOnly makes a PutConfig succeed only if the key does not exist yet
// (ALREADY_EXISTS otherwise).
func CreateOnly() ConfigOption {
	return configOptionFunc(func(w *configWrite) { w.createOnly = true })
}

// Recursive makes a DeleteConfig delete the key's whole subtree.
func Recursive() ConfigOption {
	return configOptionFunc(func(w *configWrite) { w.recursive = true })
}

func configOptions(opts []ConfigOption) configWrite {
	var w configWrite
	for _, o := range opts {
		o.applyConfig(&w)
	}
	return w
}

// PutConfig writes key and returns its new entry. It is not retried: a
// conditional write (fenced, compare-and-set, create-only) whose answer was
// lost cannot tell on a retry whether the write was its own, so every error
// comes back to the caller (FAILED_PRECONDITION for a fence that no longer
// holds or a version that moved on, ALREADY_EXISTS for CreateOnly, ...).
func PutConfig(ctx context.Context, client warrenv1.ConfigServiceClient, key string, value []byte,
	opts ...ConfigOption) (*warrenv1.ConfigEntry, error) {
	w := configOptions(opts)
	resp, err := client.PutConfig(ctx, &warrenv1.PutConfigRequest{Key: key, Value: value,
		ExpectedVersion: w.expectedVersion, CreateOnly: w.createOnly, Fence: w.fence})
	if err != nil {
		return nil, err
	}
	return resp.Entry, nil
}

// DeleteConfig deletes key (a key with children becomes a namespace node
// unless Recursive). Not retried, for PutConfig's reason.
func DeleteConfig(ctx context.Context, client warrenv1.ConfigServiceClient, key string, opts ...ConfigOption) error {
	w := configOptions(opts)
	_, err := client.DeleteConfig(ctx, &warrenv1.DeleteConfigRequest{Key: key,
		ExpectedVersion: w.expectedVersion, Recursive: w.recursive, Fence: w.fence})
	return err
}

// Txn applies ops all or nothing if every check passes and fence (nil: no
// fence) still holds, and returns the new entry of each put, in op order.
// A failing check or op is FAILED_PRECONDITION naming its index
// (`checks[i]: ...`, `ops[i]: ...`), and nothing changes. Not retried, for
// PutConfig's reason. Build checks and ops with CheckVersion, CheckExists,
// CheckMissing, PutOp and DeleteOp.
func Txn(ctx context.Context, client warrenv1.ConfigServiceClient, checks []*warrenv1.TxnCheck,
	ops []*warrenv1.TxnOp, fence *warrenv1.Fence) ([]*warrenv1.ConfigEntry, error) {
	resp, err := client.Txn(ctx, &warrenv1.TxnRequest{Checks: checks, Ops: ops, Fence: fence})
	if err != nil {
		return nil, err
	}
	return resp.Entries, nil
}

// CheckVersion is a Txn check that key exists at exactly version.
func CheckVersion(key string, version int64) *warrenv1.TxnCheck {
	return &warrenv1.TxnCheck{Key: key, Condition: &warrenv1.TxnCheck_Version{Version: version}}
}

// CheckExists is a Txn check that key exists.
func CheckExists(key string) *warrenv1.TxnCheck {
	return &warrenv1.TxnCheck{Key: key, Condition: &warrenv1.TxnCheck_Exists{Exists: true}}
}

// CheckMissing is a Txn check that key does not exist.
func CheckMissing(key string) *warrenv1.TxnCheck {
	return &warrenv1.TxnCheck{Key: key, Condition: &warrenv1.TxnCheck_Exists{Exists: false}}
}

// PutOp is a Txn op writing key, conditioned by ExpectVersion or CreateOnly
// (a fence belongs to the whole Txn, not to an op).
func PutOp(key string, value []byte, opts ...ConfigOption) *warrenv1.TxnOp {
	w := configOptions(opts)
	return &warrenv1.TxnOp{Op: &warrenv1.TxnOp_Put{Put: &warrenv1.PutConfigRequest{Key: key, Value: value,
		ExpectedVersion: w.expectedVersion, CreateOnly: w.createOnly, Fence: w.fence}}}
}

// DeleteOp is a Txn op deleting key, conditioned by ExpectVersion, or of
// its whole subtree with Recursive.
func DeleteOp(key string, opts ...ConfigOption) *warrenv1.TxnOp {
	w := configOptions(opts)
	return &warrenv1.TxnOp{Op: &warrenv1.TxnOp_Delete{Delete: &warrenv1.DeleteConfigRequest{Key: key,
		ExpectedVersion: w.expectedVersion, Recursive: w.recursive, Fence: w.fence}}}
}
