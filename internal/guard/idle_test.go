package guard

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hy-home/hyhome/internal/clock"
)

// TestIdleRelease (NFR-RES-01): once no request has started or ended for the
// idle period, the guard closes its kept-alive engine connections and
// returns free memory, once per quiet period; requests that keep coming put
// it off. Time is a fake clock; the requests go to the real engine.
func TestIdleRelease(t *testing.T) {
	fake := clock.NewFake(time.Unix(1_800_000_000, 0))
	const idle = 10 * time.Second
	tg := startGuard(t, func(c *Config) { c.Clock, c.IdleRelease = fake, idle })
	g := tg.g

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", tg.sockets[ProfileReadonly])
	}}}
	defer hc.CloseIdleConnections()
	ping := func() {
		t.Helper()
		resp, err := hc.Get("http://docker/_ping")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ping: %s", resp.Status)
		}
		// The handler records its end after the client has the answer;
		// wait for it, so that it is not taken for later activity.
		deadline := time.Now().Add(10 * time.Second)
		for g.inFlight.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the guard still counts a request in flight")
			}
			time.Sleep(time.Millisecond)
		}
	}
	idleConns := func() int {
		g.upstream.pool.mu.Lock()
		defer g.upstream.pool.mu.Unlock()
		return len(g.upstream.pool.idle)
	}
	releases := func() int { return int(testutil.ToFloat64(g.metrics.idleReleases)) }
	// armed waits until the releaser is waiting on its next timer, which
	// it makes only after it has acted on the one that fired.
	armed := func() {
		t.Helper()
		if !fake.WaitPending(1, 10*time.Second) {
			t.Fatal("the idle releaser is not waiting on the clock")
		}
	}

	armed()
	ping()
	if n := idleConns(); n != 1 {
		t.Fatalf("after a request the pool keeps %d engine connections, want 1", n)
	}

	// A quiet period: one release, and the kept-alive connection is closed.
	fake.Advance(idle)
	armed()
	if n := releases(); n != 1 {
		t.Fatalf("after %v quiet: %d releases, want 1", idle, n)
	}
	if n := idleConns(); n != 0 {
		t.Fatalf("after the release the pool keeps %d engine connections, want 0", n)
	}

	// Staying quiet does not release again.
	fake.Advance(idle)
	armed()
	fake.Advance(idle)
	armed()
	if n := releases(); n != 1 {
		t.Fatalf("a longer quiet period released %d times, want once", n)
	}

	// Requests every half period put the next release off; it comes one
	// full period after the last of them.
	for range 4 {
		ping()
		fake.Advance(idle / 2)
		armed()
	}
	if n := releases(); n != 1 {
		t.Fatalf("while requests kept coming: %d releases, want still 1", n)
	}
	if n := idleConns(); n != 1 {
		t.Fatalf("while requests kept coming the pool keeps %d engine connections, want 1", n)
	}
	fake.Advance(idle / 2)
	armed()
	if n := releases(); n != 2 {
		t.Fatalf("a full period after the last request: %d releases, want 2", n)
	}
	if n := idleConns(); n != 0 {
		t.Fatalf("after the second release the pool keeps %d engine connections, want 0", n)
	}
	// The guard still serves after a release, on a new engine connection.
	ping()
}
