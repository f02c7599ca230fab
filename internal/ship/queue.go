package ship

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hy-home/hyhome/internal/atomicfile"
)

// The on-disk queue is a directory of append-only segment files of
// length-prefixed, CRC-checked records, plus a checkpoint:
//
//	00000000000000000007.seg   records, appended by the sources
//	00000000000000000008.seg   the active segment
//	checkpoint.json            how far Loki has accepted, and the positions
//	                           of every source as of that point
//
// Sources append a record (entry + their position after it) in one write()
// before they read further from Docker; the pusher reads records in order,
// pushes them, and only after Loki accepted them moves the acknowledged
// position. Segments wholly behind it are deleted after the checkpoint that
// covers them is on disk. A SIGKILL at any point therefore loses nothing:
// unacknowledged records are pushed again on restart (Loki stores exact
// duplicates once), and the sources resume from the newest position found
// in the checkpoint or in any record still queued.

// Pos is a place in the queue: a segment and a byte offset in it.
type Pos struct {
	Seg uint64 `json:"segment"`
	Off int64  `json:"offset"`
}

func (p Pos) before(o Pos) bool { return p.Seg < o.Seg || p.Seg == o.Seg && p.Off < o.Off }

// Priority decides what Append does when the queue is full.
type Priority int

const (
	// PriorityLogs blocks until there is room: the lines stay in Docker's
	// log files meanwhile, so waiting loses nothing.
	PriorityLogs Priority = iota
	// PriorityEvents never blocks: the engine drops events for subscribers
	// that do not keep up, so events may use a reserve above the cap and are
	// refused (ErrQueueFull, counted by the caller) only beyond it.
	PriorityEvents
)

// ErrQueueFull is returned for events when the queue and its reserve are full.
var ErrQueueFull = errors.New("queue full")

// errQueueClosed is returned by Append after Close.
var errQueueClosed = errors.New("queue closed")

type queueConfig struct {
	Dir          string
	MaxBytes     int64 // cap on unacknowledged bytes
	SegmentBytes int64 // a segment is sealed once it reaches this size
	Logger       *slog.Logger
}

type segment struct {
	id     uint64
	size   int64 // committed (fully written) bytes
	sealed bool
}

// queue is the durable FIFO between the sources and the pusher.
type queue struct {
	cfg queueConfig
	log *slog.Logger

	mu       sync.Mutex
	segs     []*segment // ascending ids; the last one is active unless closed
	active   *os.File
	ack      Pos
	entries  int64             // unacknowledged entry records
	acked    map[string]Cursor // source positions as of ack
	dirty    bool              // ack or acked changed since the last checkpoint
	space    chan struct{}     // closed when room appears
	notify   chan struct{}     // cap 1: data was appended
	closed   bool
	writeErr error // the last append's error, cleared by a success
}

// recovery is what OpenQueue found on disk.
type recovery struct {
	// Positions are the newest positions per source: the checkpoint's,
	// overridden by every record still queued.
	Positions map[string]Cursor
	Entries   int64 // entry records waiting to be pushed
	Bytes     int64 // their bytes
	Corrupt   int   // records lost to corruption (not torn tails)
	Truncated int64 // bytes cut from a torn tail
}

type checkpointFile struct {
	Version   int               `json:"version"`
	Ack       Pos               `json:"ack"`
	Positions map[string]Cursor `json:"positions"`
}

const checkpointName = "checkpoint.json"

func segName(id uint64) string { return fmt.Sprintf("%020d.seg", id) }

// openQueue opens or creates the queue in cfg.Dir and recovers its state.
func openQueue(cfg queueConfig) (*queue, recovery, error) {
	q := &queue{
		cfg:    cfg,
		log:    cfg.Logger,
		acked:  map[string]Cursor{},
		space:  make(chan struct{}),
		notify: make(chan struct{}, 1),
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	var rec recovery
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, rec, fmt.Errorf("creating queue directory: %w", err)
	}
	cp, err := readCheckpoint(filepath.Join(cfg.Dir, checkpointName))
	if err != nil {
		return nil, rec, err
	}
	q.ack = cp.Ack
	for k, v := range cp.Positions {
		q.acked[k] = v
	}
	names, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, rec, fmt.Errorf("listing queue directory: %w", err)
	}
	for _, de := range names {
		name := de.Name()
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
		if err != nil {
			q.log.Warn("ignoring unexpected file in the queue directory", "file", name)
			continue
		}
		path := filepath.Join(cfg.Dir, name)
		if id < q.ack.Seg {
			// Acknowledged before the last checkpoint; its deletion did not
			// happen before the process stopped.
			if err := os.Remove(path); err != nil {
				return nil, rec, fmt.Errorf("removing acknowledged segment %s: %w", name, err)
			}
			continue
		}
		fi, err := de.Info()
		if err != nil {
			return nil, rec, fmt.Errorf("reading segment %s: %w", name, err)
		}
		q.segs = append(q.segs, &segment{id: id, size: fi.Size(), sealed: true})
	}
	slices.SortFunc(q.segs, func(a, b *segment) int { return cmpUint(a.id, b.id) })
	if !slices.ContainsFunc(q.segs, func(s *segment) bool { return s.id == q.ack.Seg }) && q.ack.Off != 0 {
		// The checkpoint points into a segment that is gone (removed by
		// hand?): start at the oldest segment still there.
		q.log.Warn("queue checkpoint points at a missing segment; reading from the oldest segment present", "segment", segName(q.ack.Seg))
		q.ack = Pos{Seg: q.ack.Seg + 1}
		if len(q.segs) > 0 {
			q.ack = Pos{Seg: q.segs[0].id}
		}
	}

	rec.Positions = map[string]Cursor{}
	for k, v := range q.acked {
		rec.Positions[k] = v
	}
	if err := q.scan(&rec); err != nil {
		return nil, rec, err
	}
	q.entries = rec.Entries
	rec.Bytes = q.unackedBytes()
	// Always write into a fresh segment: the old ones stay read-only.
	next := q.ack.Seg
	if n := len(q.segs); n > 0 {
		next = q.segs[n-1].id + 1
	}
	if err := q.openSegment(next); err != nil {
		return nil, rec, err
	}
	return q, rec, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func readCheckpoint(path string) (checkpointFile, error) {
	cp := checkpointFile{Positions: map[string]Cursor{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("reading queue checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, fmt.Errorf("reading queue checkpoint %s: %w (remove the state directory to start afresh)", path, err)
	}
	if cp.Version != 1 {
		return cp, fmt.Errorf("queue checkpoint %s has version %d; this hyhome reads version 1", path, cp.Version)
	}
	if cp.Positions == nil {
		cp.Positions = map[string]Cursor{}
	}
	return cp, nil
}

// scan reads every unacknowledged record once at startup: it counts them,
// collects the newest position per source, and truncates a torn tail.
func (q *queue) scan(rec *recovery) error {
	trusted := true // positions after a corrupt record are not trusted
	for i, s := range q.segs {
		start := int64(0)
		if s.id == q.ack.Seg {
			start = q.ack.Off
		}
		if start > s.size {
			return fmt.Errorf("queue checkpoint points at offset %d of segment %s, which has only %d bytes", start, segName(s.id), s.size)
		}
		f, err := os.Open(filepath.Join(q.cfg.Dir, segName(s.id)))
		if err != nil {
			return fmt.Errorf("opening segment %s: %w", segName(s.id), err)
		}
		br := bufio.NewReaderSize(io.NewSectionReader(f, start, s.size-start), 256<<10)
		off := start
		var buf []byte
		for off < s.size {
			var r Record
			var n int
			r, n, buf, err = readFramed(br, buf)
			if err != nil {
				if i == len(q.segs)-1 {
					// The newest segment ends where the crash cut it.
					rec.Truncated = s.size - off
					q.log.Warn("truncating torn queue tail", "segment", segName(s.id), "offset", off, "bytes", rec.Truncated, "err", err)
					if terr := os.Truncate(filepath.Join(q.cfg.Dir, segName(s.id)), off); terr != nil {
						f.Close()
						return fmt.Errorf("truncating torn segment %s: %w", segName(s.id), terr)
					}
					s.size = off
				} else {
					rec.Corrupt++
					trusted = false
					q.log.Error("corrupt queue segment: skipping its remainder", "segment", segName(s.id), "offset", off, "bytes", s.size-off, "err", err)
					s.size = off
					// The bytes beyond off are never read; the segment is
					// deleted once acknowledged past.
				}
				break
			}
			off += int64(n)
			if r.Kind == kindEntry {
				rec.Entries++
			}
			if trusted {
				applyPosition(rec.Positions, &r)
			}
		}
		f.Close()
	}
	return nil
}

// applyPosition records r's effect on its source's position.
func applyPosition(m map[string]Cursor, r *Record) {
	if r.Kind == kindForget {
		delete(m, r.Source)
		return
	}
	m[r.Source] = r.Cursor
}

// readRecord reads one framed record; buf is reused for the body.
func readFramed(br *bufio.Reader, buf []byte) (Record, int, []byte, error) {
	var h [recordHeaderLen]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return Record{}, 0, buf, fmt.Errorf("%w: header: %v", errTorn, err)
	}
	n, crc, err := parseHeader(h[:])
	if err != nil {
		return Record{}, 0, buf, err
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		return Record{}, 0, buf, fmt.Errorf("%w: body: %v", errTorn, err)
	}
	if c := crc32.Checksum(buf, crcTable); c != crc {
		return Record{}, 0, buf, fmt.Errorf("record checksum mismatch (got %08x, want %08x)", c, crc)
	}
	r, err := decodeRecord(buf)
	return r, recordHeaderLen + n, buf, err
}

func (q *queue) openSegment(id uint64) error {
	path := filepath.Join(q.cfg.Dir, segName(id))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating queue segment: %w", err)
	}
	if q.active != nil {
		q.active.Close()
	}
	if n := len(q.segs); n > 0 {
		q.segs[n-1].sealed = true
	}
	q.active = f
	q.segs = append(q.segs, &segment{id: id})
	return nil
}

// unackedBytes is the size of everything not yet acknowledged. Callers hold mu.
func (q *queue) unackedBytes() int64 {
	var n int64
	for _, s := range q.segs {
		switch {
		case s.id < q.ack.Seg:
		case s.id == q.ack.Seg:
			n += max(0, s.size-q.ack.Off)
		default:
			n += s.size
		}
	}
	return n
}

// append writes recs in one write() and returns once they are in the
// file (the page cache: enough to survive SIGKILL). PriorityLogs waits for
// room; PriorityEvents fails with ErrQueueFull beyond the reserve.
func (q *queue) append(ctx context.Context, buf []byte, entries int, prio Priority) error {
	if len(buf) == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return errQueueClosed
		}
		used := q.unackedBytes()
		if prio == PriorityEvents {
			if used+int64(len(buf)) > q.cfg.MaxBytes+q.eventReserve() {
				return ErrQueueFull
			}
			break
		}
		// One oversized write may overshoot the cap, so that a single
		// append larger than the cap cannot block forever.
		if used < q.cfg.MaxBytes {
			break
		}
		ch := q.space
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			q.mu.Lock()
			return ctx.Err()
		}
		q.mu.Lock()
	}
	act := q.segs[len(q.segs)-1]
	if act.size >= q.cfg.SegmentBytes {
		if err := q.openSegment(act.id + 1); err != nil {
			q.writeErr = err
			return err
		}
		act = q.segs[len(q.segs)-1]
	}
	n, err := q.active.Write(buf)
	if err != nil {
		// Cut a partial write off so the segment stays a sequence of whole
		// records; if even that fails, seal it at the last whole record.
		if n > 0 {
			if terr := q.active.Truncate(act.size); terr != nil {
				if oerr := q.openSegment(act.id + 1); oerr != nil {
					q.log.Error("queue segment cannot be repaired", "segment", segName(act.id), "err", oerr)
				}
			}
		}
		q.writeErr = fmt.Errorf("writing queue segment %s: %w", segName(act.id), err)
		return q.writeErr
	}
	q.writeErr = nil
	act.size += int64(n)
	q.entries += int64(entries)
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

func (q *queue) eventReserve() int64 { return max(1<<20, q.cfg.MaxBytes/16) }

// acknowledge moves the acknowledged position to to, after Loki accepted
// everything before it; entries is the number of entry records in between
// and recs their positions, applied in order.
func (q *queue) acknowledge(to Pos, entries int64, apply func(map[string]Cursor)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if to.before(q.ack) {
		return
	}
	q.ack = to
	// A fully read sealed segment is acknowledged as the start of the next,
	// so that the checkpoint lets it be deleted.
	for i, s := range q.segs {
		if s.id == q.ack.Seg && s.sealed && q.ack.Off >= s.size && i+1 < len(q.segs) {
			q.ack = Pos{Seg: q.segs[i+1].id}
		}
	}
	q.entries -= entries
	if q.entries < 0 {
		q.entries = 0
	}
	apply(q.acked)
	q.dirty = true
	close(q.space)
	q.space = make(chan struct{})
}

// checkpoint persists the acknowledged position and the positions as of
// it (write, fsync, rename), then deletes segments wholly behind it. The
// active segment is fsynced first so that a power loss keeps at most the
// records written since.
func (q *queue) checkpoint() error {
	q.mu.Lock()
	if !q.dirty {
		q.mu.Unlock()
		return nil
	}
	cp := checkpointFile{Version: 1, Ack: q.ack, Positions: make(map[string]Cursor, len(q.acked))}
	for k, v := range q.acked {
		cp.Positions[k] = v
	}
	q.dirty = false
	active := q.active
	q.mu.Unlock()

	if active != nil {
		if err := active.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			q.markDirty()
			return fmt.Errorf("syncing queue segment: %w", err)
		}
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encoding queue checkpoint: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(q.cfg.Dir, checkpointName), 0o600, b); err != nil {
		q.markDirty()
		return err
	}

	q.mu.Lock()
	var drop []uint64
	keep := q.segs[:0]
	for _, s := range q.segs {
		if s.id < cp.Ack.Seg {
			drop = append(drop, s.id)
			continue
		}
		keep = append(keep, s)
	}
	q.segs = keep
	q.mu.Unlock()
	for _, id := range drop {
		if err := os.Remove(filepath.Join(q.cfg.Dir, segName(id))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing acknowledged segment: %w", err)
		}
	}
	return nil
}

func (q *queue) isDirty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dirty
}

func (q *queue) markDirty() {
	q.mu.Lock()
	q.dirty = true
	q.mu.Unlock()
}

// queueStats is a snapshot for metrics and health.
type queueStats struct {
	Entries  int64
	Bytes    int64
	Segments int
	WriteErr error
}

func (q *queue) stats() queueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queueStats{Entries: q.entries, Bytes: q.unackedBytes(), Segments: len(q.segs), WriteErr: q.writeErr}
}

// ackPos returns the acknowledged position (where a reader starts).
func (q *queue) ackPos() Pos {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ack
}

// segInfo reports a segment's committed size and whether it is sealed, or
// the id of the next segment when id is gone or unknown.
func (q *queue) segInfo(id uint64) (size int64, sealed, ok bool, next uint64, hasNext bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, s := range q.segs {
		if s.id == id {
			if i+1 < len(q.segs) {
				return s.size, s.sealed, true, q.segs[i+1].id, true
			}
			return s.size, s.sealed, true, 0, false
		}
		if s.id > id {
			return 0, false, false, s.id, true
		}
	}
	return 0, false, false, 0, false
}

// close stops appends, wakes blocked writers and closes the active segment.
// It does not checkpoint; the owner does that last.
func (q *queue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	close(q.space)
	q.space = make(chan struct{})
	var err error
	if q.active != nil {
		if serr := q.active.Sync(); serr != nil {
			err = fmt.Errorf("syncing queue segment: %w", serr)
		}
		q.active.Close()
		q.active = nil
	}
	return err
}

// queueReader reads records in order from a position, up to what has been
// committed; it never reads a record that is still being written.
type queueReader struct {
	q      *queue
	pos    Pos
	f      *os.File
	fSeg   uint64
	br     *bufio.Reader
	secEnd int64 // the section br reads ends here
	buf    []byte
}

func newQueueReader(q *queue, from Pos) *queueReader {
	return &queueReader{q: q, pos: from, br: bufio.NewReaderSize(nil, 256<<10), secEnd: -1}
}

func (r *queueReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// next returns the next committed record and the position after it, or
// ok=false when there is nothing more to read for now.
func (r *queueReader) next() (rec Record, after Pos, size int, ok bool, err error) {
	for {
		segSize, sealed, exists, next, hasNext := r.q.segInfo(r.pos.Seg)
		if !exists {
			if !hasNext {
				return Record{}, r.pos, 0, false, nil
			}
			r.pos = Pos{Seg: next}
			continue
		}
		if r.pos.Off >= segSize {
			if sealed && hasNext {
				r.pos = Pos{Seg: next}
				continue
			}
			return Record{}, r.pos, 0, false, nil
		}
		if r.f == nil || r.fSeg != r.pos.Seg {
			r.close()
			f, err := os.Open(filepath.Join(r.q.cfg.Dir, segName(r.pos.Seg)))
			if err != nil {
				return Record{}, r.pos, 0, false, fmt.Errorf("opening queue segment: %w", err)
			}
			r.f, r.fSeg, r.secEnd = f, r.pos.Seg, -1
		}
		if r.secEnd < 0 || r.pos.Off >= r.secEnd {
			// Everything buffered was consumed: read on up to what is
			// committed now.
			r.br.Reset(io.NewSectionReader(r.f, r.pos.Off, segSize-r.pos.Off))
			r.secEnd = segSize
		}
		rec, n, buf, err := readFramed(r.br, r.buf)
		r.buf = buf
		if err != nil {
			// Committed data that does not decode is corruption on disk:
			// skip the rest of this segment rather than stall forever.
			skipped := int(r.secEnd - r.pos.Off)
			r.q.log.Error("corrupt queue record: skipping the rest of the segment", "segment", segName(r.pos.Seg), "offset", r.pos.Off, "bytes", skipped, "err", err)
			r.pos.Off = r.secEnd
			r.secEnd = -1
			return Record{}, r.pos, skipped, true, errCorruptSkipped
		}
		r.pos.Off += int64(n)
		return rec, r.pos, n, true, nil
	}
}

// errCorruptSkipped tells the pusher a damaged stretch was skipped; the
// returned position is past it and may be acknowledged.
var errCorruptSkipped = errors.New("corrupt queue data skipped")
