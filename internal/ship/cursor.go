package ship

import (
	"strconv"
	"time"
)

// Cursor is a resumable position in a Docker stream that can only be
// re-opened by time: container logs and events both take ?since=<time> and
// return every item stamped at or after it, in the engine's order.
//
// Resuming with since=Anchor and dropping the first Skip items yields
// exactly the items not yet consumed. A plain "last timestamp" would not:
// Docker stamps stdout and stderr lines in two goroutines, and the pieces of
// a long line all carry the first piece's time, so timestamps in a log file
// are not monotonic, and resuming after the newest one seen would silently
// lose the earlier-stamped lines written after it.
type Cursor struct {
	Anchor int64  `json:"anchor"` // Unix nanoseconds
	Skip   uint64 `json:"skip"`   // items at or after Anchor already consumed
}

// Since formats the anchor as the engine's since parameter (seconds.nanos).
func (c Cursor) Since() string {
	sec, nsec := c.Anchor/1e9, c.Anchor%1e9
	if nsec < 0 { // before 1970: not a real container time, but stay well formed
		return "0"
	}
	return strconv.FormatInt(sec, 10) + "." + leftPad9(nsec)
}

func leftPad9(n int64) string {
	s := strconv.FormatInt(n, 10)
	for len(s) < 9 {
		s = "0" + s
	}
	return s
}

// reorderMargin bounds how far behind the newest consumed item a later
// item's timestamp may be and still be found on resume. Cross-stream
// reordering in the engine is microseconds; a long line's pieces share the
// first piece's time, so a line written slowly over more than this margin
// could be cut short on resume after a crash (never in normal operation).
const reorderMargin = int64(2 * time.Second)

const minReanchor = 1024

// tracker advances a Cursor as items are consumed, in stream order.
type tracker struct {
	cur    Cursor
	recent []int64 // timestamps >= cur.Anchor of consumed items, in order
	maxTS  int64
	next   int // re-anchor when len(recent) reaches this
}

func newTracker(c Cursor) *tracker {
	return &tracker{cur: Cursor{Anchor: c.Anchor}, maxTS: c.Anchor, next: minReanchor}
}

// consume records one item with timestamp ts as consumed.
func (t *tracker) consume(ts int64) {
	if ts >= t.cur.Anchor {
		t.cur.Skip++
		t.recent = append(t.recent, ts)
	}
	if ts > t.maxTS {
		t.maxTS = ts
	}
	if len(t.recent) >= t.next {
		t.reanchor()
	}
}

// reanchor moves the anchor to reorderMargin behind the newest item, so
// the cursor stays small (a resume re-reads and skips at most the margin's
// worth of items) and the bookkeeping bounded.
func (t *tracker) reanchor() {
	a := t.maxTS - reorderMargin
	if a > t.cur.Anchor {
		kept := t.recent[:0]
		for _, ts := range t.recent {
			if ts >= a {
				kept = append(kept, ts)
			}
		}
		t.recent = kept
		t.cur = Cursor{Anchor: a, Skip: uint64(len(kept))}
	}
	t.next = max(minReanchor, 2*len(t.recent))
}

// settle is called when the stream has ended and nothing stamped earlier
// than what was consumed can appear any more (the container stopped): the
// cursor becomes "everything after the newest item", with nothing to skip.
func (t *tracker) settle() bool {
	if t.cur.Skip == 0 {
		return false
	}
	t.cur = Cursor{Anchor: t.maxTS + 1}
	t.recent = t.recent[:0]
	t.next = minReanchor
	return true
}
