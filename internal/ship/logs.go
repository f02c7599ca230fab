package ship

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/hy-home/hyhome/internal/engine"
)

// Docker's log copier cuts lines longer than this into pieces, each sent
// as its own message with the first piece's timestamp; only the last piece
// ends with a newline (daemon/logger/copier.go, 16 KiB buffer).
const dockerChunk = 16 << 10

// maxFrame bounds one multiplexed frame; Docker's frames are one log
// message (at most a 16 KiB piece plus its timestamp).
const maxFrame = 16 << 20

// tailer reads one container's logs. It runs while there is something to
// read: started by the container's start event (or at startup), it follows
// the log stream until the container stops, ships what is left, settles
// the position and exits; the next start event starts it again.
type tailer struct {
	a    *Agent
	id   string
	kick chan struct{}
	log  *slog.Logger

	running bool // guarded by a.mu

	// carry is what the previous read left undone: frames after its
	// position that were already shipped. A read resuming from exactly
	// that position skips them instead of shipping them again.
	carry *carried
}

type carried struct {
	cursor Cursor
	done   []bool
}

// kick makes sure the container's logs are read: it starts the tailer if
// it is idle, or tells a running one to look again when it is done.
func (a *Agent) kick(_ context.Context, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srcCtx == nil || a.srcCtx.Err() != nil {
		return
	}
	t := a.tailers[id]
	if t == nil {
		t = &tailer{a: a, id: id, kick: make(chan struct{}, 1), log: a.log.With("component", "logs", "container_id", engine.ShortID(id))}
		a.tailers[id] = t
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
	if !t.running {
		t.running = true
		a.srcWG.Add(1)
		a.m.followed.Inc()
		go t.run(a.srcCtx)
	}
}

// catchUpSlots bounds concurrent reads of stopped containers' logs, so
// that a restart on a host with many exited containers does not hammer the
// engine.
const catchUpSlots = 4

func (t *tailer) run(ctx context.Context) {
	a := t.a
	defer a.srcWG.Done()
	backoff := time.Second
	for {
		select {
		case <-t.kick:
		default:
		}
		res := t.once(ctx)
		if res.err != nil && ctx.Err() == nil {
			a.m.streamErrors.WithLabelValues("logs").Inc()
			t.log.Warn("reading container logs", "err", res.err, "retry_in", backoff)
		}
		retry := res.again || res.err != nil
		if retry && !res.now && ctx.Err() == nil {
			t.waitOrKick(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
		a.mu.Lock()
		if ctx.Err() != nil || (!retry && len(t.kick) == 0) {
			t.running = false
			if res.removed {
				delete(a.tailers, t.id)
			}
			a.mu.Unlock()
			a.m.followed.Dec()
			return
		}
		a.mu.Unlock()
	}
}

func (t *tailer) waitOrKick(ctx context.Context, d time.Duration) {
	tm := t.a.cfg.Clock.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C():
	case <-t.kick:
		// Put it back: the loop drains it at the top.
		select {
		case t.kick <- struct{}{}:
		default:
		}
	case <-ctx.Done():
	}
}

type onceResult struct {
	again   bool // read again (the container still runs but the stream ended)
	now     bool // read again without waiting
	removed bool // the container is gone; its position was dropped
	err     error
}

// once reads the container's logs from its position: following them if it
// runs, up to the end if it does not.
func (t *tailer) once(ctx context.Context) onceResult {
	a := t.a
	ins, err := a.docker.ContainerInspect(ctx, t.id, client.ContainerInspectOptions{})
	if errdefs.IsNotFound(err) {
		return onceResult{removed: true, err: t.forget(ctx)}
	}
	if err != nil {
		return onceResult{err: fmt.Errorf("inspecting container: %w", err)}
	}
	c := ins.Container
	if c.Config == nil || c.State == nil {
		return onceResult{err: errors.New("inspect returned no config or state")}
	}
	if !a.cfg.Select.Matches(c.Config.Labels) {
		return onceResult{}
	}
	source := logSource(t.id)
	cur, known := a.position(source)
	if !known {
		// First sight: from its creation, but no further back than Backfill.
		anchor := a.cfg.Clock.Now().Add(-a.cfg.Backfill).UnixNano()
		if created, err := time.Parse(time.RFC3339Nano, c.Created); err == nil && created.UnixNano() > anchor {
			anchor = created.UnixNano()
		}
		cur = Cursor{Anchor: anchor}
	}
	running := c.State.Running
	if !running {
		select {
		case a.catchUp <- struct{}{}:
			defer func() { <-a.catchUp }()
		case <-ctx.Done():
			return onceResult{}
		}
	}
	stream, err := a.docker.ContainerLogs(ctx, t.id, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: running, Since: cur.Since(),
	})
	if err != nil {
		if strings.Contains(err.Error(), "does not support reading") {
			driver := ""
			if c.HostConfig != nil {
				driver = c.HostConfig.LogConfig.Type
			}
			t.log.Warn("the container's logging driver cannot be read back; shipping its events only", "driver", driver)
			return onceResult{}
		}
		if errdefs.IsNotFound(err) {
			return onceResult{removed: true, err: t.forget(ctx)}
		}
		return onceResult{err: fmt.Errorf("opening the log stream: %w", err)}
	}
	r := t.newLogReader(ctx, &c, cur)
	if t.carry != nil && t.carry.cursor == cur {
		r.redone = t.carry.done
	}
	t.carry = nil
	err = r.read(stream)
	stream.Close()
	if ctx.Err() != nil {
		return onceResult{}
	}
	if err != nil {
		t.carry = r.carried()
		return onceResult{err: err}
	}
	ins2, err := a.docker.ContainerInspect(ctx, t.id, client.ContainerInspectOptions{})
	switch {
	case errdefs.IsNotFound(err):
		if ferr := r.finish(); ferr != nil {
			return onceResult{err: ferr}
		}
		return onceResult{removed: true, err: t.forget(ctx)}
	case err != nil:
		t.carry = r.carried()
		return onceResult{err: fmt.Errorf("inspecting container: %w", err)}
	case ins2.Container.State != nil && ins2.Container.State.Running:
		// Still (or again) running: the engine closed the stream, or the
		// container restarted while we read. Read on from the position.
		t.carry = r.carried()
		return onceResult{again: true}
	case running:
		// The container stopped while we followed it. The engine ends a
		// follow stream when the container stops, which can be before the
		// last piece of an unterminated line reaches the log file: read
		// once more, without following, before calling the log complete.
		t.carry = r.carried()
		return onceResult{again: true, now: true}
	}
	// It had stopped before this read began: everything it wrote has been
	// read. Finish open lines and settle the position.
	return onceResult{err: r.finish()}
}

// forget drops the position of a removed container.
func (t *tailer) forget(ctx context.Context) error {
	source := logSource(t.id)
	if _, ok := t.a.position(source); !ok {
		return nil
	}
	rec := Record{Kind: kindForget, Source: source}
	if err := t.a.appendRecords(ctx, appendRecord(nil, &rec), 0, PriorityLogs); err != nil {
		return fmt.Errorf("queueing the removal of the container's position: %w", err)
	}
	t.a.forgetPosition(source)
	return nil
}

// logReader turns one log stream into queue records.
type logReader struct {
	a      *Agent
	ctx    context.Context
	source string
	tty    bool
	labels [3]Labels // by stream: 1 stdout, 2 stderr
	meta   Labels

	tr      *tracker
	skip    uint64       // items already queued before this read
	frames  []frameState // read but not yet part of the position, oldest first
	seqHead uint64       // sequence number of frames[0]
	pending [3]*partial  // an unfinished long line per stream

	redone    []bool // frames after the starting position already shipped by the previous read
	redoneIdx int
	recent    recentLines

	// mu guards the output side below: a timer may flush while the reader
	// waits for the engine.
	mu         sync.Mutex
	buf        []byte // encoded records not yet appended
	entries    int
	cursor     Cursor // position after the records in buf
	dirty      bool   // the position moved without an entry in buf
	lastFlush  time.Time
	timerArmed bool
	flushErr   error // a timer's failed flush, reported by the next read
	closed     bool  // the read is over: what is still buffered is dropped, not flushed late
}

type frameState struct {
	ts   int64
	done bool
}

type partial struct {
	ts   int64
	data []byte
	seqs []uint64
}

func (t *tailer) newLogReader(ctx context.Context, c *container.InspectResponse, cur Cursor) *logReader {
	a := t.a
	r := &logReader{
		a: a, ctx: ctx, source: logSource(t.id), tty: c.Config.Tty,
		tr: newTracker(cur), skip: cur.Skip, cursor: cur,
	}
	r.labels[1] = a.streamLabels(c.Config.Labels, "logs", "stdout")
	r.labels[2] = a.streamLabels(c.Config.Labels, "logs", "stderr")
	if !a.cfg.NoStructuredMetadata {
		r.meta = Labels{{"container_id", t.id}, {"container_name", strings.TrimPrefix(c.Name, "/")}}
	}
	return r
}

// read consumes the stream to its end. Records are appended to the queue
// in batches: at once when the reader is about to wait for more input
// after a quiet spell, so a lone line is queued without delay, and at most
// every flushDelay while lines keep coming, so a busy container costs a
// few large writes rather than one per line.
func (r *logReader) read(stream io.Reader) error {
	in := &flushReader{r: stream, lr: r}
	var err error
	if r.tty {
		err = r.readTTY(in)
	} else {
		err = r.readMultiplexed(in)
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ferr := r.flushLocked(); err == nil {
		err = ferr
	}
	if err != nil {
		// Records that could not be queued must not be appended later by
		// a timer, behind those of the next read from the last position.
		r.closed = true
	}
	return err
}

// flushDelay bounds how long a read line waits in the reader's buffer
// while more lines keep arriving.
const flushDelay = 5 * time.Millisecond

// flushReader gives the log reader a chance to append its buffered
// records before every read from the engine that might block.
type flushReader struct {
	r  io.Reader
	lr *logReader
}

func (f *flushReader) Read(p []byte) (int, error) {
	if err := f.lr.beforeRead(); err != nil {
		return 0, err
	}
	return f.r.Read(p)
}

// beforeRead flushes now if the last flush was at least flushDelay ago,
// or else makes sure a flush happens flushDelay after the last one even if
// the engine sends nothing more meanwhile.
func (r *logReader) beforeRead() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.flushErr != nil {
		return r.flushErr
	}
	if len(r.buf) == 0 && !r.dirty {
		return nil
	}
	clock := r.a.cfg.Clock
	wait := r.lastFlush.Add(flushDelay).Sub(clock.Now())
	if wait <= 0 {
		return r.flushLocked()
	}
	if r.timerArmed {
		return nil
	}
	r.timerArmed = true
	t := clock.NewTimer(wait)
	go func() {
		select {
		case <-t.C():
		case <-r.ctx.Done():
			t.Stop()
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.timerArmed = false
		if r.ctx.Err() == nil && !r.closed {
			if err := r.flushLocked(); err != nil {
				r.flushErr = err
			}
		}
	}()
	return nil
}

// readMultiplexed demultiplexes a non-TTY stream: 8-byte headers (stream
// type, 3 zero bytes, big-endian length) each followed by one message.
func (r *logReader) readMultiplexed(in io.Reader) error {
	br := bufio.NewReaderSize(in, 64<<10)
	var hdr [8]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("log stream cut inside a frame header")
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if n > maxFrame {
			return fmt.Errorf("log stream frame of %d bytes exceeds %d", n, maxFrame)
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return fmt.Errorf("log stream cut inside a frame: %w", err)
		}
		switch hdr[0] {
		case 0, 1: // stdin is never logged; treat it as stdout as stdcopy does
			r.message(1, payload)
		case 2:
			r.message(2, payload)
		case 3:
			return fmt.Errorf("the engine reported an error in the log stream: %s", strings.TrimSpace(string(payload)))
		default:
			return fmt.Errorf("log stream frame of unknown stream type %d", hdr[0])
		}
	}
}

// readTTY reads a TTY container's stream: messages are not framed, so a
// message is "<timestamp> " then up to one newline or a 16 KiB piece.
// TTY output ends lines with \r\n; the \r is dropped.
func (r *logReader) readTTY(in io.Reader) error {
	p := ttyParser{r: in, buf: make([]byte, 64<<10)}
	for {
		msg, err := p.next()
		if err != nil {
			return err
		}
		r.message(1, msg)
	}
}

// ttyParser splits an unframed TTY log stream into messages.
type ttyParser struct {
	r          io.Reader
	buf        []byte
	start, end int
	eof        bool
}

// next returns one message: timestamp, space, content and, when the
// message completes a line, the trailing newline.
func (p *ttyParser) next() ([]byte, error) {
	for {
		data := p.buf[p.start:p.end]
		if sp := bytes.IndexByte(data[:min(len(data), 64)], ' '); sp >= 0 {
			body := data[sp+1:]
			if nl := bytes.IndexByte(body[:min(len(body), dockerChunk+1)], '\n'); nl >= 0 {
				return p.take(sp + 1 + nl + 1), nil
			}
			if len(body) >= dockerChunk { // a full piece of a longer line
				return p.take(sp + 1 + dockerChunk), nil
			}
		} else if len(data) >= 64 {
			// No timestamp where one must be: resynchronise at the next line.
			if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
				p.start += nl + 1
				continue
			}
			p.start = p.end
			continue
		}
		if p.eof {
			if len(data) == 0 {
				return nil, io.EOF
			}
			return p.take(len(data)), nil // an unterminated last line
		}
		if err := p.fill(); err != nil {
			return nil, err
		}
	}
}

func (p *ttyParser) take(n int) []byte {
	m := p.buf[p.start : p.start+n]
	p.start += n
	return m
}

func (p *ttyParser) fill() error {
	if p.start > 0 {
		p.end = copy(p.buf, p.buf[p.start:p.end])
		p.start = 0
	}
	n, err := p.r.Read(p.buf[p.end:])
	p.end += n
	if errors.Is(err, io.EOF) {
		p.eof = true
		return nil
	}
	return err
}

// message handles one Docker log message: "<RFC 3339 nano time> <text>",
// the text ending in "\n" unless it is a piece of a longer line.
func (r *logReader) message(stream int, msg []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts, text := splitTimestamp(msg)
	if ts == 0 {
		ts = r.a.cfg.Clock.Now().UnixNano()
	}
	complete := len(text) > 0 && text[len(text)-1] == '\n'
	var key lineKey
	if complete {
		key = r.recent.key(ts, stream, text)
	}
	if r.skip > 0 { // queued by an earlier read: only account for it
		r.skip--
		r.tr.consume(ts)
		if complete {
			r.recent.add(key)
		}
		return
	}
	if complete {
		if r.recent.seen(key) {
			r.a.m.replays.Inc()
			return
		}
		r.recent.add(key)
	}
	seq := r.seqHead + uint64(len(r.frames))
	r.frames = append(r.frames, frameState{ts: ts})
	if r.redoneIdx < len(r.redone) {
		shipped := r.redone[r.redoneIdx]
		r.redoneIdx++
		if shipped { // its line went out with the previous read
			r.done(seq)
			return
		}
	}
	if complete {
		text = text[:len(text)-1]
		if r.tty {
			text = bytes.TrimSuffix(text, []byte{'\r'})
		}
	}
	p := r.pending[stream]
	if p == nil && complete && len(text) <= r.a.cfg.MaxLineBytes {
		r.done(seq)
		r.emit(stream, ts, text)
		return
	}
	if p == nil {
		p = &partial{ts: ts}
		r.pending[stream] = p
	}
	p.data = append(p.data, text...)
	p.seqs = append(p.seqs, seq)
	// A line beyond Loki's size limit is shipped in pieces of the limit;
	// the position moves only when the whole line has been queued, so a
	// crash in between repeats identical pieces (stored once by Loki).
	for len(p.data) > r.a.cfg.MaxLineBytes {
		r.emit(stream, p.ts, p.data[:r.a.cfg.MaxLineBytes])
		p.data = append(p.data[:0], p.data[r.a.cfg.MaxLineBytes:]...)
	}
	if complete {
		r.completePartial(stream)
	}
}

func (r *logReader) completePartial(stream int) {
	p := r.pending[stream]
	r.pending[stream] = nil
	for _, s := range p.seqs {
		r.done(s)
	}
	r.emit(stream, p.ts, p.data)
}

// done marks a frame as shipped and moves every finished frame at the head
// into the position.
func (r *logReader) done(seq uint64) {
	r.frames[seq-r.seqHead].done = true
	n := 0
	for n < len(r.frames) && r.frames[n].done {
		r.tr.consume(r.frames[n].ts)
		n++
	}
	if n > 0 {
		r.frames = append(r.frames[:0], r.frames[n:]...)
		r.seqHead += uint64(n)
		r.cursor = r.tr.cur
		r.dirty = true
	}
}

func (r *logReader) emit(stream int, ts int64, text []byte) {
	rec := Record{
		Kind:     kindEntry,
		Source:   r.source,
		Cursor:   r.tr.cur,
		Time:     ts,
		Labels:   r.labels[stream],
		Line:     strings.ToValidUTF8(string(text), "\uFFFD"),
		Metadata: r.meta,
	}
	r.buf = appendRecord(r.buf, &rec)
	r.entries++
	r.cursor = rec.Cursor
	r.dirty = false // the entry carries the position
	if len(r.buf) >= 512<<10 {
		// Keep memory bounded however long the engine's read returns
		// data; an error surfaces at the next read.
		if err := r.flushLocked(); err != nil {
			r.flushErr = err
		}
	}
}

// flushLocked appends the buffered records (and a position-only record if
// the position moved without an entry) in one write; r.mu is held.
func (r *logReader) flushLocked() error {
	r.lastFlush = r.a.cfg.Clock.Now()
	if r.dirty {
		rec := Record{Kind: kindCursor, Source: r.source, Cursor: r.cursor}
		r.buf = appendRecord(r.buf, &rec)
		r.dirty = false
	}
	if len(r.buf) == 0 {
		return nil
	}
	if err := r.a.appendRecords(r.ctx, r.buf, r.entries, PriorityLogs); err != nil {
		return fmt.Errorf("queueing log lines: %w", err)
	}
	r.a.m.read.WithLabelValues("logs").Add(float64(r.entries))
	r.a.setPosition(r.source, r.cursor)
	r.buf = r.buf[:0]
	r.entries = 0
	return nil
}

// carried is the state a following read from the same position needs to
// avoid shipping again what this one shipped past an unfinished line.
func (r *logReader) carried() *carried {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A read from this position returns, after the skipped prefix, the
	// frames stamped at or after its anchor, in order: exactly these.
	c := &carried{cursor: r.cursor, done: make([]bool, 0, len(r.frames))}
	for _, f := range r.frames {
		if f.ts >= r.cursor.Anchor {
			c.done = append(c.done, f.done)
		}
	}
	return c
}

// finish is called once the container has stopped and its stream ended:
// unfinished lines are final, and the position settles after the newest
// line so the next start reads only what is new.
func (r *logReader) finish() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := 1; s <= 2; s++ {
		if r.pending[s] != nil {
			r.completePartial(s)
		}
	}
	if len(r.frames) == 0 && r.tr.settle() {
		r.cursor = r.tr.cur
		r.dirty = true
	}
	return r.flushLocked()
}

// splitTimestamp splits "<RFC 3339 nano> <text>". It returns 0 when the
// message has no timestamp, and then the whole message as text.
func splitTimestamp(msg []byte) (int64, []byte) {
	sp := bytes.IndexByte(msg[:min(len(msg), 64)], ' ')
	if sp < 0 {
		return 0, msg
	}
	t, err := time.Parse(time.RFC3339Nano, string(msg[:sp]))
	if err != nil {
		return 0, msg
	}
	return t.UnixNano(), msg[sp+1:]
}

// resync looks at every container once: those selected that run, that were
// never read, or (at startup) that ran since their position was settled
// get their logs read. At startup it also drops positions of containers
// that no longer exist.
func (a *Agent) resync(ctx context.Context, startup bool) {
	res, err := a.docker.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("listing containers", "err", err)
		}
		return
	}
	present := make(map[string]bool, len(res.Items))
	for _, c := range res.Items {
		present[c.ID] = true
		if !a.cfg.Select.Matches(c.Labels) {
			continue
		}
		pos, known := a.position(logSource(c.ID))
		switch {
		case c.State == container.StateRunning || c.State == container.StateRestarting || c.State == container.StatePaused:
			a.kick(ctx, c.ID)
		case !known || pos.Skip > 0:
			a.kick(ctx, c.ID)
		case startup:
			// Settled while we ran last time; read again only if it has
			// run since.
			ins, err := a.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
			if err != nil || ins.Container.State == nil {
				continue
			}
			if fin, err := time.Parse(time.RFC3339Nano, ins.Container.State.FinishedAt); err == nil && fin.UnixNano() >= pos.Anchor {
				a.kick(ctx, c.ID)
			}
		}
	}
	if !startup {
		return
	}
	a.mu.Lock()
	var gone []string
	for src := range a.positions {
		if id, ok := strings.CutPrefix(src, "logs/"); ok && !present[id] {
			gone = append(gone, src)
		}
	}
	a.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	var buf []byte
	for _, src := range gone {
		rec := Record{Kind: kindForget, Source: src}
		buf = appendRecord(buf, &rec)
	}
	if err := a.appendRecords(ctx, buf, 0, PriorityLogs); err != nil {
		return
	}
	for _, src := range gone {
		a.forgetPosition(src)
	}
	a.log.Debug("dropped positions of removed containers", "count", len(gone))
}

// recentLines remembers the last complete lines a reader saw, by
// timestamp, stream and content, to drop the engine's replays: when
// json-file rotates under a follow stream, the engine sends a few lines
// again. Loki would store them once anyway, but counting them would skew
// the position: a later read from the files sees them once, and skipping
// by a count that includes them would skip as many real lines. Pieces of
// long lines are not remembered: identical pieces of one line share a
// timestamp legitimately.
type recentLines struct {
	seed maphash.Seed
	set  map[lineKey]struct{}
	ring []lineKey
	next int
}

type lineKey struct {
	ts     int64
	stream int
	hash   uint64
}

const recentLinesKept = 512

func (s *recentLines) key(ts int64, stream int, text []byte) lineKey {
	if s.set == nil {
		s.seed = maphash.MakeSeed()
		s.set = make(map[lineKey]struct{}, recentLinesKept)
		s.ring = make([]lineKey, 0, recentLinesKept)
	}
	return lineKey{ts: ts, stream: stream, hash: maphash.Bytes(s.seed, text)}
}

func (s *recentLines) seen(k lineKey) bool {
	_, ok := s.set[k]
	return ok
}

func (s *recentLines) add(k lineKey) {
	if len(s.ring) < recentLinesKept {
		s.ring = append(s.ring, k)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % recentLinesKept
	}
	s.set[k] = struct{}{}
}
