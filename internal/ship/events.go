package ship

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hy-home/hyhome/internal/docker"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// runEvents follows the engine's event stream until ctx ends: it ships each
// event as one entry and starts and stops container log readers as events
// say. After a disconnect or a restart it resumes with ?since= from the
// last event it had queued, so events in between are not lost (within the
// engine's replay buffer of recent events).
//
// With no position yet (a first start) it asks for events since it
// started, not since the stream opened: the engine answers GET /events'
// headers before it subscribes the stream (moby's getEvents), so an event
// in between would reach no one; since= makes the engine replay its buffer
// in the same step as it subscribes. The time is the engine's own (docker
// info's SystemTime), which since is compared with: the agent's clock may
// run ahead of a remote engine's, and a resume from a position in the
// engine's future would replay nothing.
func (a *Agent) runEvents(ctx context.Context) {
	log := a.log.With("component", "events")
	resume, known := a.position(sourceEvents)
	if !known {
		resume = Cursor{Anchor: a.engineNow(ctx, log).UnixNano()}
	}
	oom := map[string]bool{} // containers whose die should say oom_killed=true
	first := true
	backoff := time.Second
	// A position from a release that counted events to skip on resume: the
	// count is not used (see eventsTracker); at worst the first resume
	// ships up to that many events again, which Loki stores once.
	resume.Skip = 0
	for ctx.Err() == nil {
		opts := client.EventsListOptions{Since: resume.Since()}
		tr := &eventsTracker{cur: resume}
		sctx, cancel := context.WithCancel(ctx)
		res := a.docker.Events(sctx, opts)
		a.setEventsUp(true)
		log.Debug("events stream connected", "since", opts.Since)
		// Containers may have started while the stream was down (or before
		// the agent started): look at them all once per connection.
		a.srcWG.Add(1)
		go func(startup bool) {
			defer a.srcWG.Done()
			a.resync(ctx, startup)
		}(first)
		first = false

		err := func() error {
			for {
				select {
				case msg := <-res.Messages:
					backoff = time.Second // the stream works again
					ts := msg.TimeNano
					if ts == 0 {
						ts = msg.Time * int64(time.Second)
					}
					before := tr.cur
					tr.consume(ts)
					a.dispatch(ctx, &msg)
					if !a.shipEvent(&msg) {
						resume = tr.cur
						continue
					}
					rec := a.eventRecord(&msg, ts, tr.cur, oom)
					buf := appendRecord(nil, &rec)
					switch err := a.appendRecords(ctx, buf, 1, PriorityEvents); {
					case err == nil:
						a.m.read.WithLabelValues("events").Inc()
						a.setPosition(sourceEvents, tr.cur)
						resume = tr.cur
					case errors.Is(err, ErrQueueFull):
						a.m.dropped.WithLabelValues(DropQueueFull).Inc()
						log.Error("queue full: dropping an event", "action", string(msg.Action), "type", string(msg.Type), "id", msg.Actor.ID)
						resume = tr.cur
					default:
						// Not queued: reconnect from before this event.
						resume = before
						return err
					}
				case err := <-res.Err:
					if err == nil {
						err = errors.New("events stream ended")
					}
					return err
				}
			}
		}()
		cancel()
		a.setEventsUp(false)
		if ctx.Err() != nil {
			return
		}
		a.m.streamErrors.WithLabelValues("events").Inc()
		log.Warn("events stream interrupted; reconnecting", "err", err, "retry_in", backoff)
		if !sleep(a.cfg.Clock, backoff, ctx.Done()) {
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// eventsTracker advances the events position: just after the newest event
// consumed, with nothing to skip. Container logs need the anchor and skip
// count of tracker (their timestamps are not monotonic, and a file replays
// everything after since); the engine's events do not, and cannot use it:
// the engine replays only its 256 newest events, walking back from the
// newest and stopping at the first older than since (moby's
// loadBufferedEvents), so a skip count larger than what it still holds
// dropped new events on resume (TestEventsResumeAfterMoreEventsThanTheEngineReplays).
// Events reach the engine's buffer and its subscribers in the order of its
// lock, their timestamps taken just before: one stamped a few microseconds
// earlier than an event already consumed, and not yet received when the
// stream breaks, is the only thing a resume can miss.
type eventsTracker struct{ cur Cursor }

func (t *eventsTracker) consume(ts int64) {
	if ts >= t.cur.Anchor {
		t.cur = Cursor{Anchor: ts + 1}
	}
}

func (a *Agent) setEventsUp(up bool) {
	a.mu.Lock()
	a.eventsUp = up
	a.eventsAt = a.cfg.Clock.Now()
	a.mu.Unlock()
	if up {
		a.m.eventsUp.Set(1)
	} else {
		a.m.eventsUp.Set(0)
	}
}

// shipEvent applies the events scope.
func (a *Agent) shipEvent(msg *events.Message) bool {
	switch a.cfg.Events {
	case EventsNone:
		return false
	case EventsSelected:
		return msg.Type != events.ContainerEventType || a.cfg.Select.Matches(msg.Actor.Attributes)
	}
	return true
}

// dispatch starts or checks a container's log reader as an event says.
func (a *Agent) dispatch(ctx context.Context, msg *events.Message) {
	if msg.Type != events.ContainerEventType || msg.Actor.ID == "" {
		return
	}
	switch msg.Action {
	case events.ActionStart:
		if a.cfg.Select.Matches(msg.Actor.Attributes) {
			a.kick(ctx, msg.Actor.ID)
		}
	case events.ActionDestroy:
		// Let its reader (if any) notice the removal and drop the position.
		a.mu.Lock()
		_, hasTailer := a.tailers[msg.Actor.ID]
		_, hasPos := a.positions[logSource(msg.Actor.ID)]
		a.mu.Unlock()
		if hasTailer || hasPos {
			a.kick(ctx, msg.Actor.ID)
		}
	}
}

// eventRecord turns an event into a queue entry: one readable logfmt line,
// labels from the container's labels (container events carry them as
// attributes) and the container ID as structured metadata.
func (a *Agent) eventRecord(msg *events.Message, ts int64, cur Cursor, oom map[string]bool) Record {
	var attrs map[string]string
	var meta Labels
	if msg.Type == events.ContainerEventType {
		attrs = msg.Actor.Attributes
		if !a.cfg.NoStructuredMetadata && msg.Actor.ID != "" {
			meta = Labels{{"container_id", msg.Actor.ID}}
			if n := msg.Actor.Attributes["name"]; n != "" {
				meta = append(meta, Label{"container_name", n})
			}
		}
		switch msg.Action {
		case events.ActionOOM:
			oom[msg.Actor.ID] = true
		case events.ActionDie, events.ActionDestroy:
			defer delete(oom, msg.Actor.ID)
		}
	}
	return Record{
		Kind:     kindEntry,
		Source:   sourceEvents,
		Cursor:   cur,
		Time:     ts,
		Labels:   a.streamLabels(attrs, "events", ""),
		Line:     strings.ToValidUTF8(FormatEvent(msg, oom[msg.Actor.ID]), "\uFFFD"),
		Metadata: meta,
	}
}

// FormatEvent renders an event as one logfmt line, for example
//
//	type=container action=die name=web image=nginx:1.27 exit_code=137 oom_killed=true id=4f9c…
//
// Actions that carry a detail after ": " (exec_start: sh -c …,
// health_status: unhealthy) are split into the action and its own key.
// Container labels are not repeated in the line: they are the stream's
// labels or are on the container.
func FormatEvent(msg *events.Message, oomKilled bool) string {
	var b strings.Builder
	action, detail, _ := strings.Cut(string(msg.Action), ": ")
	attrs := msg.Actor.Attributes
	kv(&b, "type", string(msg.Type))
	kv(&b, "action", action)
	switch msg.Type {
	case events.ContainerEventType:
		kv(&b, "name", attrs["name"])
		kv(&b, "image", attrs["image"])
		switch {
		case action == "die":
			kv(&b, "exit_code", attrs["exitCode"])
			if code, err := strconv.Atoi(attrs["exitCode"]); err == nil && code > 128 && code < 160 {
				kv(&b, "exit_signal", signalName(code-128))
			}
			if oomKilled {
				kv(&b, "oom_killed", "true")
			}
			kv(&b, "exec_duration", attrs["execDuration"])
		case action == "kill":
			if s, err := strconv.Atoi(attrs["signal"]); err == nil {
				kv(&b, "signal", signalName(s))
			} else {
				kv(&b, "signal", attrs["signal"])
			}
		case action == "oom":
			kv(&b, "oom", "true")
		case strings.HasPrefix(action, "exec_"):
			kv(&b, "exec", detail)
			kv(&b, "exec_id", attrs["execID"])
			kv(&b, "exit_code", attrs["exitCode"])
		case action == "health_status":
			kv(&b, "health", detail)
		case action == "rename":
			kv(&b, "old_name", attrs["oldName"])
		}
	case events.NetworkEventType:
		kv(&b, "name", attrs["name"])
		kv(&b, "network_type", attrs["type"])
		kv(&b, "container", attrs["container"])
	case events.VolumeEventType:
		kv(&b, "name", msg.Actor.ID)
		kv(&b, "driver", attrs["driver"])
		kv(&b, "container", attrs["container"])
		kv(&b, "destination", attrs["destination"])
	default:
		kv(&b, "name", attrs["name"])
		if detail != "" {
			kv(&b, "detail", detail)
		}
	}
	if msg.Type != events.VolumeEventType {
		kv(&b, "id", msg.Actor.ID)
	}
	if msg.Scope != "" && msg.Scope != "local" {
		kv(&b, "scope", msg.Scope)
	}
	return b.String()
}

// kv appends key=value in logfmt, quoting values that need it and leaving
// out empty ones.
func kv(b *strings.Builder, k, v string) {
	if v == "" {
		return
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(k)
	b.WriteByte('=')
	if strings.ContainsAny(v, " \t\"=\\\n\r") {
		b.WriteString(strconv.Quote(v))
		return
	}
	b.WriteString(v)
}

var signalNames = map[int]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
	8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
	14: "SIGALRM", 15: "SIGTERM",
}

func signalName(n int) string {
	if s, ok := signalNames[n]; ok {
		return s
	}
	return strconv.Itoa(n)
}

// engineNow is the engine's clock (docker info's SystemTime), or the
// agent's when the engine does not say (logged).
func (a *Agent) engineNow(ctx context.Context, log *slog.Logger) time.Time {
	t, err := docker.EngineNow(ctx, a.docker)
	if err == nil {
		return t
	}
	log.Warn("reading the engine's clock (docker info); using this host's for the first events position", "err", err)
	return time.Now()
}
