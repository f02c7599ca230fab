// Package slack stands in for Slack's incoming webhook: Alertmanager's
// api_url points at a Receiver for a verification run, and the alert path
// waits for the notification naming its service.
//
// It receives and matches messages; it must not judge the alert path (the
// ALERTING check does).
package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Message is one webhook post, as Alertmanager's Slack integration sends it.
type Message struct {
	// At is when it was received.
	At time.Time
	// Title is the first attachment's title (or the text's first line).
	Title string
	// Status is "firing" or "resolved", from the title.
	Status string
	all    string // every text field, for matching
}

// Receiver is a webhook endpoint that keeps what it receives.
type Receiver struct {
	addr string
	srv  *http.Server
	now  func() time.Time

	mu     sync.Mutex
	msgs   []Message
	notify chan struct{}
}

// Listen starts a receiver on addr ("127.0.0.1:0" picks a port). now stamps
// the messages; log receives a line when it listens.
func Listen(addr string, now func() time.Time, log *slog.Logger) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the Slack webhook on %s: %w", addr, err)
	}
	r := &Receiver{addr: ln.Addr().String(), now: now, notify: make(chan struct{}, 1)}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	log.Debug("Slack webhook receiver listening", "addr", r.addr)
	return r, nil
}

// Addr is the address the receiver listens on.
func (r *Receiver) Addr() string { return r.addr }

// Close stops the receiver.
func (r *Receiver) Close() { _ = r.srv.Close() }

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(w, "invalid_request", http.StatusMethodNotAllowed)
		return
	}
	m, err := parse(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		// What Slack answers to a body it cannot read.
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	m.At = r.now()
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	_, _ = io.WriteString(w, "ok")
}

// parse reads a webhook payload: text and attachments.
func parse(body io.Reader) (Message, error) {
	var p struct {
		Text        string `json:"text"`
		Attachments []struct {
			Title    string `json:"title"`
			Text     string `json:"text"`
			Fallback string `json:"fallback"`
			Pretext  string `json:"pretext"`
		} `json:"attachments"`
	}
	if err := json.NewDecoder(body).Decode(&p); err != nil {
		return Message{}, err
	}
	m := Message{all: p.Text}
	for _, a := range p.Attachments {
		if m.Title == "" {
			m.Title = a.Title
		}
		m.all += "\n" + a.Title + "\n" + a.Text + "\n" + a.Fallback + "\n" + a.Pretext
	}
	if m.Title == "" {
		m.Title, _, _ = strings.Cut(strings.TrimSpace(p.Text), "\n")
	}
	// Alertmanager's default title, and the stack's, start with the
	// group's status: [FIRING:n] or [RESOLVED].
	m.Status = "firing"
	if strings.Contains(strings.ToUpper(m.Title), "RESOLVED") {
		m.Status = "resolved"
	}
	return m, nil
}

// Mark is a point in what the receiver has received: Await(..., mark, ...)
// considers only the messages received after it.
type Mark int

// Mark returns the current point. Take it just before the step whose
// notification is awaited (taking the service down, bringing it back), so
// that a notification of an earlier alert episode, a resolved message for
// the previous outage still in Alertmanager's queue, say, is never taken
// for this one.
func (r *Receiver) Mark() Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Mark(len(r.msgs))
}

// Await returns the first message received after mark whose status is
// status and that names service, waiting up to timeout for it.
func (r *Receiver) Await(ctx context.Context, timeout time.Duration, mark Mark, service, status string) (Message, error) {
	deadline := time.NewTimer(max(timeout, 0))
	defer deadline.Stop()
	for {
		r.mu.Lock()
		since := r.msgs[min(int(mark), len(r.msgs)):]
		for _, m := range since {
			if m.Status == status && strings.Contains(m.all, service) {
				r.mu.Unlock()
				return m, nil
			}
		}
		n := len(since)
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-deadline.C:
			return Message{}, fmt.Errorf("none within %s (%d other message(s) received)", timeout.Round(time.Second), n)
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}
