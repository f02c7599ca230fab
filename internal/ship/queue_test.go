package ship

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func testRecord(i int) Record {
	return Record{
		Kind:     kindEntry,
		Source:   "logs/c1",
		Cursor:   Cursor{Anchor: int64(1000 + i), Skip: uint64(i % 3)},
		Time:     int64(1_700_000_000_000_000_000 + i),
		Labels:   Labels{{"job", "infra"}, {"tier", "gateway"}},
		Line:     fmt.Sprintf("line %d", i),
		Metadata: Labels{{"container_id", "abc"}},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []Record{
		testRecord(7),
		{Kind: kindCursor, Source: "events", Cursor: Cursor{Anchor: -5, Skip: 1 << 40}},
		{Kind: kindForget, Source: "logs/x"},
		{Kind: kindEntry, Source: "s", Line: ""},
	} {
		buf := appendRecord(nil, &r)
		n, _, err := parseHeader(buf)
		if err != nil || n != len(buf)-recordHeaderLen {
			t.Fatalf("header: n=%d err=%v (len %d)", n, err, len(buf))
		}
		got, err := decodeRecord(buf[recordHeaderLen:])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}

func openTestQueue(t *testing.T, dir string, maxBytes, segBytes int64) (*queue, recovery) {
	t.Helper()
	q, rec, err := openQueue(queueConfig{Dir: dir, MaxBytes: maxBytes, SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	return q, rec
}

func appendN(t *testing.T, q *queue, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		r := testRecord(i)
		if err := q.append(context.Background(), appendRecord(nil, &r), 1, PriorityLogs); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll drains a reader and returns the lines and the final position.
func readAll(t *testing.T, r *queueReader) ([]string, Pos) {
	t.Helper()
	var lines []string
	var pos Pos
	for {
		rec, after, _, ok, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return lines, pos
		}
		pos = after
		lines = append(lines, rec.Line)
	}
}

func TestQueueSurvivesReopenAndAcknowledges(t *testing.T) {
	dir := t.TempDir()
	q, rec := openTestQueue(t, dir, 1<<20, 300) // tiny segments: many files
	if rec.Entries != 0 || len(rec.Positions) != 0 {
		t.Fatalf("fresh queue recovered %+v", rec)
	}
	appendN(t, q, 0, 20)
	r := newQueueReader(q, q.ackPos())
	lines, _ := readAll(t, r)
	if len(lines) != 20 || lines[19] != "line 19" {
		t.Fatalf("read %v", lines)
	}
	// Acknowledge the first 12 records.
	r2 := newQueueReader(q, q.ackPos())
	var at Pos
	for range 12 {
		_, after, _, _, _ := r2.next()
		at = after
	}
	r.close()
	r2.close()
	segsBefore, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	q.acknowledge(at, 12, func(m map[string]Cursor) { m["logs/c1"] = testRecord(11).Cursor })
	if err := q.checkpoint(); err != nil {
		t.Fatal(err)
	}
	segsAfter, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segsAfter) >= len(segsBefore) {
		t.Fatalf("acknowledged segments were not deleted: %d before, %d after", len(segsBefore), len(segsAfter))
	}
	if st := q.stats(); st.Entries != 8 {
		t.Fatalf("stats after ack: %+v", st)
	}
	if err := q.close(); err != nil {
		t.Fatal(err)
	}

	q2, rec2 := openTestQueue(t, dir, 1<<20, 300)
	defer q2.close()
	if rec2.Entries != 8 {
		t.Fatalf("recovered %d entries, want 8", rec2.Entries)
	}
	if got := rec2.Positions["logs/c1"]; got != testRecord(19).Cursor {
		t.Fatalf("recovered position %+v, want the newest queued record's %+v", got, testRecord(19).Cursor)
	}
	lines, _ = readAll(t, newQueueReader(q2, q2.ackPos()))
	if len(lines) != 8 || lines[0] != "line 12" {
		t.Fatalf("after reopen read %v, want line 12..19", lines)
	}
}

func TestQueueTruncatesTornTail(t *testing.T) {
	dir := t.TempDir()
	q, _ := openTestQueue(t, dir, 1<<20, 1<<20)
	appendN(t, q, 0, 5)
	q.close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	last := segs[len(segs)-1]
	// A crash mid-write leaves half a record.
	r := testRecord(99)
	half := appendRecord(nil, &r)
	f, _ := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(half[:len(half)/2])
	f.Close()

	q2, rec := openTestQueue(t, dir, 1<<20, 1<<20)
	defer q2.close()
	if rec.Entries != 5 || rec.Truncated != int64(len(half)/2) {
		t.Fatalf("recovery %+v, want 5 entries and %d bytes truncated", rec, len(half)/2)
	}
	if lines, _ := readAll(t, newQueueReader(q2, q2.ackPos())); len(lines) != 5 {
		t.Fatalf("read %v", lines)
	}
}

func TestQueueSkipsCorruptMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	q, _ := openTestQueue(t, dir, 1<<20, 200)
	appendN(t, q, 0, 10)
	q.close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	// Flip a byte in the first record of the first segment.
	b, _ := os.ReadFile(segs[0])
	b[recordHeaderLen+3] ^= 0xff
	os.WriteFile(segs[0], b, 0o600)

	q2, rec := openTestQueue(t, dir, 1<<20, 200)
	defer q2.close()
	if rec.Corrupt != 1 || rec.Entries >= 10 || rec.Entries == 0 {
		t.Fatalf("recovery %+v: want one corrupt stretch and the other segments intact", rec)
	}
	// Positions after corruption are not trusted: the sources re-read.
	if _, ok := rec.Positions["logs/c1"]; ok {
		t.Fatalf("trusted positions after a corrupt record: %+v", rec.Positions)
	}
	if lines, _ := readAll(t, newQueueReader(q2, q2.ackPos())); int64(len(lines)) != rec.Entries {
		t.Fatalf("read %d lines, recovery counted %d", len(lines), rec.Entries)
	}
}

func TestQueueCapBlocksLogsAndBoundsEvents(t *testing.T) {
	dir := t.TempDir()
	r0 := testRecord(0)
	one := int64(len(appendRecord(nil, &r0)))
	q, _ := openTestQueue(t, dir, 4*one, 1<<20)
	defer q.close()
	appendN(t, q, 0, 4) // exactly at the cap

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := q.append(ctx, appendRecord(nil, &r0), 1, PriorityLogs)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append at the cap returned %v, want it to block until the context ended", err)
	}

	// Events use the reserve (max(1 MiB, cap/16)) and then are refused.
	ev := Record{Kind: kindEntry, Source: "events", Line: string(make([]byte, 300<<10))}
	buf := appendRecord(nil, &ev)
	var refused int
	for range 5 {
		if err := q.append(context.Background(), buf, 1, PriorityEvents); errors.Is(err, ErrQueueFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused != 2 {
		t.Fatalf("refused %d of 5 300 KiB events, want 2 (3 fit the 1 MiB reserve)", refused)
	}

	// Acknowledging frees room and wakes a blocked log append.
	done := make(chan error, 1)
	go func() { done <- q.append(context.Background(), appendRecord(nil, &r0), 1, PriorityLogs) }()
	rd := newQueueReader(q, q.ackPos())
	defer rd.close()
	_, end := readAll(t, rd)
	q.acknowledge(end, 7, func(map[string]Cursor) {})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestQueueRejectsBadCheckpoint(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, checkpointName), []byte("{not json"), 0o600)
	if _, _, err := openQueue(queueConfig{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 20}); err == nil {
		t.Fatal("opened a queue with a corrupt checkpoint")
	}
	os.WriteFile(filepath.Join(dir, checkpointName), []byte(`{"version":9}`), 0o600)
	if _, _, err := openQueue(queueConfig{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 20}); err == nil {
		t.Fatal("opened a queue with a future checkpoint version")
	}
}

func TestTrackerResumesExactlyAcrossReordering(t *testing.T) {
	// Items as the engine returns them from since=0: stderr's line 3 is
	// stamped before stdout's line 2 but written after it.
	stream := []int64{10, 20, 15, 30, 30, 40}
	for crashAfter := 0; crashAfter <= len(stream); crashAfter++ {
		tr := newTracker(Cursor{})
		for _, ts := range stream[:crashAfter] {
			tr.consume(ts)
		}
		cur := tr.cur
		// Resume: the engine returns items with ts >= Anchor in order; skip.
		var resumed []int64
		skip := cur.Skip
		for _, ts := range stream {
			if ts < cur.Anchor {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			resumed = append(resumed, ts)
		}
		if want := stream[crashAfter:]; !reflect.DeepEqual(resumed, want) && !(len(want) == 0 && len(resumed) == 0) {
			t.Fatalf("crash after %d: resumed %v, want %v (cursor %+v)", crashAfter, resumed, want, cur)
		}
	}
}

func TestTrackerReanchorsAndStaysBounded(t *testing.T) {
	tr := newTracker(Cursor{})
	base := int64(1_000_000_000_000)
	for i := range 100_000 {
		tr.consume(base + int64(i)*int64(time.Millisecond)) // 100 s of items
	}
	if tr.cur.Anchor < base+int64(90*time.Second) {
		t.Fatalf("anchor %d did not advance", tr.cur.Anchor-base)
	}
	if len(tr.recent) > 8*minReanchor || tr.cur.Skip != uint64(len(tr.recent)) {
		t.Fatalf("tracker holds %d timestamps, skip %d", len(tr.recent), tr.cur.Skip)
	}
	if !tr.settle() || tr.cur.Skip != 0 || tr.cur.Anchor != base+int64(99_999)*int64(time.Millisecond)+1 {
		t.Fatalf("settled cursor %+v", tr.cur)
	}
	if tr.settle() {
		t.Fatal("settling twice reported a change")
	}
	if got := (Cursor{Anchor: 1_700_000_000_000_000_123}).Since(); got != "1700000000.000000123" {
		t.Fatalf("Since() = %s", got)
	}
}
