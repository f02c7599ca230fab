package slack

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/testenv"
)

func listen(t *testing.T) (*Receiver, func(body string) int) {
	t.Helper()
	r, err := Listen("127.0.0.1:0", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	post := func(body string) int {
		resp, err := http.Post("http://"+r.Addr()+"/services/T/B/x", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	return r, post
}

func TestReceiver(t *testing.T) {
	r, post := listen(t)
	if code := post("not json"); code != http.StatusBadRequest {
		t.Errorf("bad payload: %d", code)
	}
	post(`{"attachments":[{"title":"[FIRING:1] HyHomeServiceMissing: other on h","text":"x"}]}`)
	post(`{"attachments":[{"title":"[FIRING:1] HyHomeServiceMissing: svc-1 on h","text":"*Service:* svc-1"}]}`)
	post(`{"text":"[RESOLVED] HyHomeServiceMissing: svc-1 on h"}`)
	ctx := context.Background()
	if m, err := r.Await(ctx, testenv.Hang, 0, "svc-1", "firing"); err != nil || !strings.HasPrefix(m.Title, "[FIRING:1]") {
		t.Errorf("firing: %v %+v", err, m)
	}
	if m, err := r.Await(ctx, testenv.Hang, 0, "svc-1", "resolved"); err != nil || m.Status != "resolved" {
		t.Errorf("resolved: %v %+v", err, m)
	}
	if _, err := r.Await(ctx, 100*time.Millisecond, 0, "svc-2", "firing"); err == nil || !strings.Contains(err.Error(), "3 other message(s)") {
		t.Errorf("absent: %v", err)
	}
}

// TestAwaitOnlyThisEpisode: a resolved message of an earlier outage of the
// same service (still queued in Alertmanager when the service went down
// again) must not pass for the resolution of this one: Await looks only
// after the mark taken when the service came back.
func TestAwaitOnlyThisEpisode(t *testing.T) {
	r, post := listen(t)
	ctx := context.Background()
	post(`{"attachments":[{"title":"[RESOLVED] HyHomeServiceDown: svc","text":"*Service:* svc"}]}`) // the earlier episode
	down := r.Mark()
	post(`{"attachments":[{"title":"[FIRING:1] HyHomeServiceDown: svc","text":"*Service:* svc"}]}`)
	if _, err := r.Await(ctx, testenv.Hang, down, "svc", "firing"); err != nil {
		t.Fatalf("firing after the mark: %v", err)
	}
	back := r.Mark()
	if _, err := r.Await(ctx, 100*time.Millisecond, back, "svc", "resolved"); err == nil || !strings.Contains(err.Error(), "0 other message(s)") {
		t.Fatalf("the earlier episode's resolved message was taken for this one: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		m, err := r.Await(ctx, testenv.Hang, back, "svc", "resolved")
		if err == nil && !strings.HasPrefix(m.Title, "[RESOLVED]") {
			err = context.Canceled
		}
		done <- err
	}()
	post(`{"attachments":[{"title":"[RESOLVED] HyHomeServiceDown: svc","text":"*Service:* svc"}]}`)
	if err := <-done; err != nil {
		t.Errorf("this episode's resolved message: %v", err)
	}
	if m := r.Mark(); m != 3 {
		t.Errorf("mark %d after three messages", m)
	}
}

// FuzzParse: whatever Alertmanager (or anyone reaching the port) posts,
// parsing returns a message or an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"text":"[RESOLVED] x","attachments":[{"title":"t"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = parse(bytes.NewReader(b)) })
}
