package warren_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
)

// The integration tests talk to the warrend in WARREN_ADDRESS (see
// scripts/with-warrend.sh); those that stop and restart a server start
// their own from WARREN_WARREND against WARREN_TEST_ZK/WARREN_TEST_AMQP_URL.

var fast = warren.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}

func needEnv(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if os.Getenv(n) == "" {
			t.Skipf("%s is not set: integration test skipped (run through test.sh)", n)
		}
	}
}

// dial connects with warren.Dial's own options (plaintext): the tests that
// restart a server rely on its capped reconnect backoff, as users do.
func dial(t *testing.T, address string) *warren.Client {
	t.Helper()
	c, err := warren.Dial(context.Background(), address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func shared(t *testing.T) *warren.Client {
	t.Helper()
	needEnv(t, "WARREN_ADDRESS")
	return dial(t, os.Getenv("WARREN_ADDRESS"))
}

var rngMu sync.Mutex
var rng = rand.New(rand.NewSource(time.Now().UnixNano()))

// unique returns a name no other run (or helper sharing the stack) uses.
func unique(prefix string) string {
	rngMu.Lock()
	defer rngMu.Unlock()
	return fmt.Sprintf("%s-%d-%06d", prefix, os.Getpid(), rng.Intn(1000000))
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// warrend is a server of a test's own.
type warrend struct {
	t     *testing.T
	root  string
	extra []string
	mu    sync.Mutex
	cmd   *exec.Cmd
	addr  string
	done  chan struct{}
}

var servingRe = regexp.MustCompile(`warrend is serving on (\S+)`)

// startWarrend starts a warrend under ZooKeeper root `root` (servers sharing
// a root are one cluster).
func startWarrend(t *testing.T, root string, extra ...string) *warrend {
	t.Helper()
	needEnv(t, "WARREN_WARREND", "WARREN_TEST_ZK", "WARREN_TEST_AMQP_URL")
	w := &warrend{t: t, root: root, extra: extra}
	w.start("127.0.0.1:0")
	t.Cleanup(func() {
		w.mu.Lock()
		cmd, done := w.cmd, w.done
		w.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Signal(syscall.SIGCONT)
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return w
}

func (w *warrend) start(listen string) {
	w.t.Helper()
	args := append([]string{"--listen=" + listen,
		"--zk_connect=" + os.Getenv("WARREN_TEST_ZK"),
		"--amqp_urls=" + os.Getenv("WARREN_TEST_AMQP_URL"),
		"--root=" + w.root, "--zk_session_timeout=4s", "--shutdown_grace=2s",
		"--log_level=info"}, w.extra...)
	// A restart on the same port may race the old socket's release: retry.
	for try := 0; ; try++ {
		cmd := exec.Command(os.Getenv("WARREN_WARREND"), args...)
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			w.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			w.t.Fatal(err)
		}
		addr := make(chan string, 1)
		done := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if m := servingRe.FindStringSubmatch(sc.Text()); m != nil {
					addr <- m[1]
				}
			}
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case a := <-addr:
			w.mu.Lock()
			w.cmd, w.addr, w.done = cmd, a, done
			w.mu.Unlock()
			return
		case <-done:
			if try < 20 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			w.t.Fatalf("warrend %v exited during start-up:\n%s", args, stderr.String())
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			w.t.Fatalf("warrend %v did not serve within 30s:\n%s", args, stderr.String())
		}
	}
}

// Addr is the server's host:port (kept across restarts).
func (w *warrend) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// Stop ends the server with SIGTERM: open streams end with UNAVAILABLE.
func (w *warrend) Stop() {
	w.t.Helper()
	w.mu.Lock()
	cmd, done := w.cmd, w.done
	w.cmd = nil
	w.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		w.t.Fatalf("warrend did not stop within 20s of SIGTERM")
	}
}

// Kill ends the server with SIGKILL, as a crash or a lost machine would:
// no stream is ended politely, the connections just drop.
func (w *warrend) Kill() {
	w.t.Helper()
	w.mu.Lock()
	cmd, done := w.cmd, w.done
	w.cmd = nil
	w.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port.
func (w *warrend) Restart() { w.t.Helper(); w.start(w.Addr()) }

// Signal sends sig (e.g. SIGSTOP, SIGCONT) to the running server.
func (w *warrend) Signal(sig syscall.Signal) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.cmd.Process.Signal(sig)
}

// lockedBuffer collects a server's stderr, to show when it fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func ownRoot(name string) string {
	return os.Getenv("WARREN_ROOT") + "-" + strings.ToLower(unique(name))
}
