package ship

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/hy-home/hyhome/internal/human"
)

// pusher reads the queue in order, batches entries, pushes them to Loki
// and acknowledges them in the queue only once Loki accepted them (or
// refused them for good, counted). It is the queue's only reader and only
// acknowledger, and it persists checkpoints.
type pusher struct {
	cfg    *Config
	q      *queue
	r      *queueReader
	client *lokiClient
	m      *metrics
	log    *slog.Logger
	clock  Clock

	lastPush       time.Time
	lastCheckpoint time.Time
	carry          *queuedRecord // read but did not fit the previous batch

	mu          sync.Mutex
	lastSuccess time.Time
	failingFrom time.Time // zero while pushes succeed
	lastErr     string
}

// queuedRecord is a record with where the queue is after it.
type queuedRecord struct {
	rec   Record
	after Pos
	size  int
}

// batch is what one push carries, plus the non-entry records read with it.
type batch struct {
	entries   []pushEntry
	bytes     int
	records   int      // every record read, entries and position-only ones
	end       Pos      // queue position after the last record
	positions []Record // the position part (kind, source, cursor) of every record, in order
	corrupt   int      // records lost to skipped corrupt data
}

func (b *batch) empty() bool { return b.records == 0 && b.corrupt == 0 }

func newPusher(cfg *Config, q *queue, client *lokiClient, m *metrics) *pusher {
	return &pusher{
		cfg: cfg, q: q, r: newQueueReader(q, q.ackPos()), client: client, m: m,
		log: cfg.Logger.With("component", "pusher"), clock: cfg.Clock,
	}
}

// run pushes until ctx ends or, once drain is closed (the sources have
// stopped), until the queue is empty. It always leaves a final checkpoint.
func (p *pusher) run(ctx context.Context, drain <-chan struct{}) {
	defer p.r.close()
	defer p.checkpoint(true)
	for {
		b, ok := p.collect(ctx, drain)
		if b != nil && !b.empty() && ctx.Err() == nil {
			if !p.deliver(ctx, b) {
				return // stopped mid-push: the batch stays queued
			}
			p.acknowledge(b)
		}
		if !ok {
			return
		}
	}
}

// collect builds the next batch. It returns ok=false when the pusher
// should stop after handling the batch it returns (if any).
func (p *pusher) collect(ctx context.Context, drain <-chan struct{}) (*batch, bool) {
	b := &batch{}
	for {
		if p.fill(b) {
			return b, true
		}
		if len(b.entries) == 0 && !b.empty() {
			return b, true // only position records: acknowledge them now
		}
		select {
		case <-drain:
			// Shutting down and the sources have stopped: push what is
			// left without waiting for company; stop once nothing is left.
			return b, !b.empty()
		default:
		}
		now := p.clock.Now()
		wait := time.Hour
		if len(b.entries) > 0 {
			// An idle pipe pushes at once; a busy one pushes at most once
			// per BatchWait, so that entries share requests under load.
			flushAt := p.lastPush.Add(p.cfg.BatchWait)
			if !now.Before(flushAt) {
				return b, true
			}
			wait = flushAt.Sub(now)
		}
		if p.q.isDirty() {
			due := p.lastCheckpoint.Add(p.cfg.CheckpointInterval)
			if !now.Before(due) {
				p.checkpoint(false)
			} else {
				wait = min(wait, due.Sub(now))
			}
		}
		t := p.clock.NewTimer(wait)
		select {
		case <-p.q.notify:
		case <-t.C():
		case <-drain:
		case <-ctx.Done():
			t.Stop()
			return nil, false
		}
		t.Stop()
	}
}

// fill reads committed records into b until it is full or nothing more
// is available; it reports whether b is full.
func (p *pusher) fill(b *batch) bool {
	for {
		var rr queuedRecord
		if p.carry != nil {
			rr, p.carry = *p.carry, nil
		} else {
			rec, after, size, ok, err := p.r.next()
			if err != nil {
				if errors.Is(err, errCorruptSkipped) {
					b.corrupt++
					b.end = after
					continue
				}
				p.log.Error("reading the queue", "err", err)
				return false
			}
			if !ok {
				return false
			}
			rr = queuedRecord{rec: rec, after: after, size: size}
		}
		if rr.rec.Kind == kindEntry && len(b.entries) > 0 && b.bytes+rr.size > p.cfg.BatchBytes {
			p.carry = &rr
			return true
		}
		rec := rr.rec
		b.records++
		b.end = rr.after
		b.positions = append(b.positions, Record{Kind: rec.Kind, Source: rec.Source, Cursor: rec.Cursor})
		if rec.Kind == kindEntry {
			b.entries = append(b.entries, pushEntry{
				labels: rec.Labels, key: rec.Labels.String(), ts: rec.Time,
				line: rec.Line, metadata: rec.Metadata, source: rec.Source,
			})
			b.bytes += rr.size
			if b.bytes >= p.cfg.BatchBytes {
				return true
			}
		}
	}
}

// deliver pushes b's entries until Loki accepted them or refused them for
// good. It returns false if it was stopped before that (the entries stay
// queued and are pushed again next time).
func (p *pusher) deliver(ctx context.Context, b *batch) bool {
	if b.corrupt > 0 {
		p.m.dropped.WithLabelValues(DropCorrupt).Add(float64(b.corrupt))
	}
	if len(b.entries) == 0 {
		return true
	}
	budget := 32 // extra requests spent isolating entries Loki refuses
	return p.deliverRange(ctx, b.entries, &budget)
}

func (p *pusher) deliverRange(ctx context.Context, entries []pushEntry, budget *int) bool {
	err := p.pushWithRetry(ctx, entries)
	if err == nil {
		return true
	}
	var pe *pushError
	if !errors.As(err, &pe) {
		return false // stopped
	}
	// Loki stores the valid entries of a request it answers 400 and names
	// the others; bisecting finds which ones it refused, so that only they
	// are counted as dropped. Re-sent valid entries are exact duplicates,
	// which Loki stores once.
	if (pe.status == 400 || pe.status == 413) && len(entries) > 1 && *budget >= 2 {
		*budget -= 2
		mid := len(entries) / 2
		return p.deliverRange(ctx, entries[:mid], budget) && p.deliverRange(ctx, entries[mid:], budget)
	}
	reason := DropRejectedPrefix + strconv.Itoa(pe.status)
	p.m.dropped.WithLabelValues(reason).Add(float64(len(entries)))
	p.log.Warn("Loki refused entries; dropping them", "status", pe.status, "entries", len(entries), "reason", reason, "answer", human.Truncate(pe.body, 512))
	return true
}

// pushWithRetry pushes entries, retrying 429, 5xx and network errors with
// exponential backoff and jitter until success or ctx ends. It returns nil
// on success, a *pushError Loki will not take back, or ctx's error.
func (p *pusher) pushWithRetry(ctx context.Context, entries []pushEntry) error {
	backoff := p.cfg.MinBackoff
	for {
		start := p.clock.Now()
		p.lastPush = start
		pctx, cancel := context.WithTimeout(ctx, p.cfg.PushTimeout)
		err := p.client.push(pctx, entries)
		cancel()
		end := p.clock.Now()
		p.m.pushDuration.Observe(end.Sub(start).Seconds())
		if err == nil {
			p.m.pushes.WithLabelValues("204").Inc()
			p.succeeded(entries, end)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var pe *pushError
		if !errors.As(err, &pe) {
			pe = &pushError{err: err}
		}
		code := "error"
		if pe.status != 0 {
			code = strconv.Itoa(pe.status)
		}
		p.m.pushes.WithLabelValues(code).Inc()
		p.failed(pe, end)
		if !pe.retryable() {
			return pe
		}
		p.m.retries.Inc()
		wait := backoff/2 + rand.N(backoff/2+1) // jitter, so restarts do not stampede
		if pe.retryAfter > 0 {
			wait = min(pe.retryAfter, p.cfg.MaxBackoff)
		}
		p.log.Warn("push failed; retrying", "err", err, "entries", len(entries), "retry_in", wait)
		if !sleep(p.clock, wait, ctx.Done()) {
			return ctx.Err()
		}
		backoff = min(2*backoff, p.cfg.MaxBackoff)
	}
}

func (p *pusher) succeeded(entries []pushEntry, at time.Time) {
	var events, logs float64
	for i := range entries {
		if entries[i].source == sourceEvents {
			events++
		} else {
			logs++
		}
		p.m.lag.Observe(max(0, at.Sub(time.Unix(0, entries[i].ts)).Seconds()))
	}
	p.m.sent.WithLabelValues("events").Add(events)
	p.m.sent.WithLabelValues("logs").Add(logs)
	p.mu.Lock()
	p.lastSuccess = at
	p.failingFrom = time.Time{}
	p.lastErr = ""
	p.mu.Unlock()
}

func (p *pusher) failed(pe *pushError, at time.Time) {
	p.mu.Lock()
	if p.failingFrom.IsZero() {
		p.failingFrom = at
	}
	p.lastErr = pe.Error()
	p.mu.Unlock()
}

func (p *pusher) acknowledge(b *batch) {
	p.q.acknowledge(b.end, int64(len(b.entries)), func(m map[string]Cursor) {
		for i := range b.positions {
			applyPosition(m, &b.positions[i])
		}
	})
	if p.clock.Now().Sub(p.lastCheckpoint) >= p.cfg.CheckpointInterval {
		p.checkpoint(false)
	}
}

func (p *pusher) checkpoint(final bool) {
	if err := p.q.checkpoint(); err != nil {
		p.m.checkpointErr.Inc()
		p.log.Error("writing the queue checkpoint", "err", err, "final", final)
	}
	p.lastCheckpoint = p.clock.Now()
}

// status is the pusher's state for /healthz.
func (p *pusher) status() (lastSuccess, failingFrom time.Time, lastErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSuccess, p.failingFrom, p.lastErr
}
