package cli

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGuardCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"guard"}, "hyhome: guard: no listeners"},
		{[]string{"guard", "--listen", "tcp://:2375"}, "want ADDRESS=PROFILE"},
		{[]string{"guard", "--listen", "unix:///tmp/x.sock=nosuch"}, `unknown profile "nosuch"`},
		{[]string{"guard", "--listen", "unix:///tmp/x.sock=readonly", "--upstream", "http://x"}, "want unix:///path or tcp://host:port"},
		{[]string{"guard", "--listen", "unix:///tmp/x.sock=readonly", "--max-body", "big"}, `--max-body "big" is not a size`},
		{[]string{"guard", "--listen", "unix:///tmp/x.sock=readonly", "--config", "/nonexistent/guard.yaml"}, "reading guard config"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, strings.NewReader(""), &out, &errb)
		if code != ExitError || !strings.Contains(errb.String(), tc.want) || strings.Count(strings.TrimSpace(errb.String()), "\n") > 0 {
			t.Errorf("hyhome %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(tc.args, " "), code, errb.String(), ExitError, tc.want)
		}
	}
}

func TestGuardRoutesCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"guard", "routes", "--profile", "readonly"}, strings.NewReader(""), &out, &errb); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "GET /containers/{name}/json\n") || strings.Contains(out.String(), "POST") {
		t.Fatalf("readonly routes:\n%s", out.String())
	}
	out.Reset()
	if code := Main([]string{"guard", "routes"}, strings.NewReader(""), &out, &errb); code != ExitOK || !strings.Contains(out.String(), "POST /containers/create") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}

func TestFlushingWriter(t *testing.T) {
	var buf syncBuf
	fw := newFlushingWriter(&buf, 10*time.Millisecond)
	fw.Write([]byte("a line\n"))
	// The flush timer fires after 10 ms; the bound is only for a hang.
	deadline := time.Now().Add(time.Minute)
	for buf.String() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if buf.String() != "a line\n" {
		t.Fatalf("not flushed on the timer: %q", buf.String())
	}
	fw.Write([]byte("last\n"))
	fw.Close()
	if buf.String() != "a line\nlast\n" {
		t.Fatalf("not flushed on Close: %q", buf.String())
	}
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
