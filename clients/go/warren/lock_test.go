package warren_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func acquire(t *testing.T, l *warren.Locker, name string, opts warren.AcquireOptions) *warren.Lock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lock, err := l.Acquire(ctx, name, opts)
	if err != nil {
		t.Fatalf("acquire %s: %v", name, err)
	}
	return lock
}

func getLock(t *testing.T, client *warren.Client, name string) *warrenv1.GetLockResponse {
	t.Helper()
	resp, err := client.Lock.GetLock(context.Background(), &warrenv1.GetLockRequest{Name: name})
	if err != nil {
		t.Fatalf("GetLock %s: %v", name, err)
	}
	return resp
}

func TestLockAcquireAndRelease(t *testing.T) {
	t.Parallel()
	client := shared(t)
	name := unique("go-lock")
	lock := acquire(t, client.NewLocker(warren.LockerOptions{HolderID: "me"}), name,
		warren.AcquireOptions{Value: []byte("working")})
	if !lock.Held() || lock.FencingToken() == 0 || lock.Name() != name {
		t.Fatalf("acquired: held %v, token %d, name %q", lock.Held(), lock.FencingToken(), lock.Name())
	}
	got := getLock(t, client, name)
	if len(got.Holders) != 1 || got.Holders[0].HolderId != "me" || string(got.Holders[0].Value) != "working" ||
		got.Holders[0].FencingToken != lock.FencingToken() || got.Limit != 1 || got.Waiting != 0 {
		t.Fatalf("GetLock while held: %v", got)
	}
	if err := lock.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if lock.Held() || lock.Reason() != warren.LostReleased {
		t.Fatalf("after Release: held %v, reason %v", lock.Held(), lock.Reason())
	}
	// The node is gone when Release returns.
	if got := getLock(t, client, name); len(got.Holders) != 0 || got.Waiting != 0 {
		t.Fatalf("GetLock after Release: %v", got)
	}
	// Acquired again, with a larger token.
	again := acquire(t, client.NewLocker(warren.LockerOptions{}), name, warren.AcquireOptions{})
	defer again.Release()
	if again.FencingToken() <= lock.FencingToken() {
		t.Fatalf("token %d after %d", again.FencingToken(), lock.FencingToken())
	}
}

// Holders of a mutex never overlap: each increments a config counter with
// a plain read and write (no compare-and-set), and no increment is lost.
func TestMutexExcludesOtherHolders(t *testing.T) {
	t.Parallel()
	client := shared(t)
	name, counter := unique("go-mutex"), unique("go-mutex-counter")
	const workers, rounds = 5, 4
	var inside, overlaps int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			locker := client.NewLocker(warren.LockerOptions{HolderID: fmt.Sprint("worker-", w)})
			for r := 0; r < rounds; r++ {
				err := func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					lock, err := locker.Acquire(ctx, name, warren.AcquireOptions{})
					if err != nil {
						return err
					}
					defer lock.Release()
					if atomic.AddInt64(&inside, 1) != 1 {
						atomic.AddInt64(&overlaps, 1)
					}
					defer atomic.AddInt64(&inside, -1)
					n := 0
					resp, err := client.Config.GetConfig(ctx, &warrenv1.GetConfigRequest{Key: counter, Consistent: true})
					switch {
					case status.Code(err) == codes.NotFound:
					case err != nil:
						return err
					default:
						n, _ = strconv.Atoi(string(resp.Entry.Value))
					}
					_, err = client.PutConfig(ctx, counter, []byte(strconv.Itoa(n+1)), warren.WithFence(lock.Fence()))
					return err
				}()
				if err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if overlaps != 0 {
		t.Fatalf("%d times a holder found another inside", overlaps)
	}
	resp, err := client.Config.GetConfig(context.Background(), &warrenv1.GetConfigRequest{Key: counter, Consistent: true})
	if err != nil || string(resp.Entry.Value) != strconv.Itoa(workers*rounds) {
		t.Fatalf("counter %v (%v), want %d", resp.GetEntry().GetValue(), err, workers*rounds)
	}
}

func TestSemaphoreAdmitsLimitHoldersAndEveryWaiterEventually(t *testing.T) {
	t.Parallel()
	client := shared(t)
	name := unique("go-semaphore")
	const limit, clients = 3, 7
	var inside, most, acquired int64
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			lock, err := client.NewLocker(warren.LockerOptions{}).Acquire(ctx, name, warren.AcquireOptions{Limit: limit})
			if err != nil {
				errs <- err
				return
			}
			defer lock.Release()
			n := atomic.AddInt64(&inside, 1)
			for {
				m := atomic.LoadInt64(&most)
				if n <= m || atomic.CompareAndSwapInt64(&most, m, n) {
					break
				}
			}
			atomic.AddInt64(&acquired, 1)
			<-release
			atomic.AddInt64(&inside, -1)
		}()
	}
	// The first `limit` hold, the others wait.
	waitFor(t, 30*time.Second, "three holders", func() bool { return atomic.LoadInt64(&acquired) == limit })
	waitFor(t, 30*time.Second, "four waiters", func() bool { return getLock(t, client, name).Waiting == clients-limit })
	got := getLock(t, client, name)
	if len(got.Holders) != limit || got.Limit != limit || atomic.LoadInt64(&acquired) != limit {
		t.Fatalf("GetLock: %v; %d acquired", got, atomic.LoadInt64(&acquired))
	}
	// A different limit is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.NewLocker(warren.LockerOptions{}).Acquire(ctx, name, warren.AcquireOptions{Limit: 2}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("limit 2 on a semaphore of 3: %v", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if acquired != clients || most > limit {
		t.Fatalf("%d of %d acquired; at most %d held at once (limit %d)", acquired, clients, most, limit)
	}
	if got := getLock(t, client, name); len(got.Holders) != 0 || got.Waiting != 0 {
		t.Fatalf("left behind: %v", got)
	}
}

func TestTryOnceAndTimeoutLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	client := shared(t)
	name := unique("go-try")
	holder := acquire(t, client.NewLocker(warren.LockerOptions{}), name, warren.AcquireOptions{})
	defer holder.Release()
	locker := client.NewLocker(warren.LockerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := locker.Acquire(ctx, name, warren.AcquireOptions{TryOnce: true}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("try-once on a held lock: %v", err)
	}
	const timeout = 700 * time.Millisecond
	start := time.Now()
	_, err := locker.Acquire(ctx, name, warren.AcquireOptions{Timeout: timeout})
	if took := time.Since(start); status.Code(err) != codes.DeadlineExceeded || took < timeout || took > timeout+5*time.Second {
		t.Fatalf("a %v wait: %v after %v", timeout, err, took)
	}
	// The caller's own deadline ends a wait without a timeout.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := locker.Acquire(short, name, warren.AcquireOptions{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a wait bounded by ctx: %v", err)
	}
	waitFor(t, 10*time.Second, "no waiter left", func() bool { return getLock(t, client, name).Waiting == 0 })
	if got := getLock(t, client, name); len(got.Holders) != 1 || got.Holders[0].FencingToken != holder.FencingToken() {
		t.Fatalf("GetLock: %v", got)
	}
	// Once free, try-once takes it.
	holder.Release()
	lock, err := locker.Acquire(ctx, name, warren.AcquireOptions{TryOnce: true})
	if err != nil {
		t.Fatalf("try-once on a free lock: %v", err)
	}
	lock.Release()
}

func TestLockIsLostWhenTheStreamBreaks(t *testing.T) {
	t.Parallel()
	srv := startWarrend(t, ownRoot("go-lock-break"))
	client := dial(t, srv.Addr())
	lock := acquire(t, client.NewLocker(warren.LockerOptions{}), unique("go-lock-break"), warren.AcquireOptions{})
	defer lock.Release()
	work := lock.Context()

	srv.Stop() // SIGTERM: the server ends the stream with UNAVAILABLE
	select {
	case <-lock.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the lock was not lost within 10s of the server's stop")
	}
	if lock.Held() || lock.Reason() != warren.LostStreamBroken || status.Code(lock.Err()) != codes.Unavailable {
		t.Fatalf("after the server stopped: held %v, reason %v, err %v", lock.Held(), lock.Reason(), lock.Err())
	}
	if work.Err() == nil {
		t.Fatal("the lock's context outlived it")
	}
	// Not silently acquired again when the server is back.
	srv.Restart()
	other := acquire(t, client.NewLocker(warren.LockerOptions{}), lock.Name(), warren.AcquireOptions{Timeout: 20 * time.Second})
	defer other.Release()
	if lock.Held() || other.FencingToken() <= lock.FencingToken() {
		t.Fatalf("old lock held %v; new token %d after %d", lock.Held(), other.FencingToken(), lock.FencingToken())
	}
}

func TestAcquireRefusesBadInputAtOnce(t *testing.T) {
	t.Parallel()
	client := shared(t)
	locker := client.NewLocker(warren.LockerOptions{Backoff: fast})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name  string
		opts  warren.AcquireOptions
		field string
	}{
		{"bad name!", warren.AcquireOptions{}, "acquire.name"},
		{unique("go-lock-limit"), warren.AcquireOptions{Limit: 1001}, "acquire.limit"},
	} {
		_, err := locker.Acquire(ctx, c.name, c.opts)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.field) {
			t.Fatalf("acquire %q %+v: %v, want INVALID_ARGUMENT naming %s", c.name, c.opts, err, c.field)
		}
	}
}
