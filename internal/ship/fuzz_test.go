package ship

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzDecodeRecord: queue records come back from disk, where crashes and
// bad sectors corrupt them. Decoding must never panic, and whatever decodes
// must re-encode to the same record.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []Record{testRecord(1), {Kind: kindCursor, Source: "events", Cursor: Cursor{Anchor: 5, Skip: 2}}, {Kind: kindForget, Source: "logs/x"}} {
		b := appendRecord(nil, &r)
		f.Add(b[recordHeaderLen:])
	}
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeRecord(body)
		if err != nil {
			return
		}
		again, err := decodeRecord(appendRecord(nil, &r)[recordHeaderLen:])
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding %+v: %+v, %v", r, again, err)
		}
	})
}

// FuzzQueueRecovery: whatever bytes a segment holds after a crash, opening
// the queue must not panic, and what it recovers must be readable.
func FuzzQueueRecovery(f *testing.F) {
	var good []byte
	for i := range 3 {
		r := testRecord(i)
		good = appendRecord(good, &r)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(append([]byte{}, good...), 0xde, 0xad))
	f.Fuzz(func(t *testing.T, seg []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		q, rec, err := openQueue(queueConfig{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 20})
		if err != nil {
			return
		}
		defer q.close()
		r := newQueueReader(q, q.ackPos())
		defer r.close()
		var n int64
		for {
			rr, _, _, ok, err := r.next()
			if err != nil || !ok {
				break
			}
			if rr.Kind == kindEntry {
				n++
			}
		}
		if n != rec.Entries {
			t.Fatalf("recovery counted %d entries, reading found %d", rec.Entries, n)
		}
	})
}

// FuzzLogStream: the engine's log stream is parsed byte by byte; a broken
// or hostile stream must end in an error, never a panic, and no entry may
// exceed the line size limit.
func FuzzLogStream(f *testing.F) {
	f.Add(frames(sample), false)
	f.Add([]byte(stamp(1)+" hello\r\n"+stamp(2)+" x"), true)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', '\n'}, false)
	// One agent for all inputs: building a queue per input would make the
	// fuzzer crawl. Each input's records are acknowledged after checking.
	a := newBareAgent(f, func(c *Config) { c.MaxLineBytes = 1024 })
	f.Fuzz(func(t *testing.T, stream []byte, tty bool) {
		tl := &tailer{a: a, id: "c"}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel() // stops a flush timer this input may have armed
		r := tl.newLogReader(ctx, testContainer(tty), Cursor{})
		err := r.read(bytes.NewReader(stream))
		if err == nil {
			err = r.finish()
		}
		// Read this input's records and acknowledge them before checking,
		// so that a failure cannot leak into the next input.
		rd := newQueueReader(a.q, a.q.ackPos())
		var recs []Record
		var end Pos
		for {
			rec, after, _, ok, rerr := rd.next()
			if rerr != nil {
				rd.close()
				t.Fatal(rerr)
			}
			if !ok {
				break
			}
			end = after
			recs = append(recs, rec)
		}
		rd.close()
		if len(recs) > 0 {
			a.q.acknowledge(end, int64(len(recs)), func(map[string]Cursor) {})
		}
		for _, rec := range recs {
			// U+FFFD (3 bytes) may replace each invalid byte.
			if rec.Kind == kindEntry && len(rec.Line) > 1024*3 {
				t.Fatalf("entry of %d bytes beyond the limit", len(rec.Line))
			}
		}
		_ = err // a broken stream may end in an error; it must not panic
	})
}
