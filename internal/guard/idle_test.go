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
	"github.com/hy-home/hyhome/internal/testenv"
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
		deadline := time.Now().Add(testenv.Hang)
		for g.inFlight.Load() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the guard still counts a request in flight")
			}
			time.Sleep(time.Millisecond)
		}
	}
	// state checks the releases so far and the engine connections the
	// pool keeps.
	state := func(when string, wantReleases, wantConns int) {
		t.Helper()
		g.upstream.pool.mu.Lock()
		conns := len(g.upstream.pool.idle)
		g.upstream.pool.mu.Unlock()
		if n := int(testutil.ToFloat64(g.metrics.idleReleases)); n != wantReleases || conns != wantConns {
			t.Fatalf("%s: %d releases and %d kept engine connections, want %d and %d", when, n, conns, wantReleases, wantConns)
		}
	}
	// armed waits until the releaser is waiting on its next timer, which
	// it makes only after it has acted on the one that fired.
	armed := func() {
		t.Helper()
		if !fake.WaitPending(1, testenv.Hang) {
			t.Fatal("the idle releaser is not waiting on the clock")
		}
	}

	armed()
	ping()
	state("after a request", 0, 1)

	// A quiet period: one release, and the kept-alive connection is closed.
	fake.Advance(idle)
	armed()
	state("after a quiet period", 1, 0)

	// Staying quiet does not release again.
	fake.Advance(idle)
	armed()
	fake.Advance(idle)
	armed()
	state("after a longer quiet period", 1, 0)

	// Requests every half period put the next release off; it comes one
	// full period after the last of them.
	for range 4 {
		ping()
		fake.Advance(idle / 2)
		armed()
	}
	state("while requests kept coming", 1, 1)
	fake.Advance(idle / 2)
	armed()
	state("a full period after the last request", 2, 0)
	// The guard still serves after a release, on a new engine connection.
	ping()
}
