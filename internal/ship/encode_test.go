package ship

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// TestEncodeProtobufMatchesLokiTypes holds the hand-appended wire encoding
// byte for byte equal to Loki's own generated types (pkg/push), which the
// binary does not link (NFR-OBS-01: what Loki receives is its own format).
func TestEncodeProtobufMatchesLokiTypes(t *testing.T) {
	a := Labels{{"job", "docker"}, {"service", "api"}}
	b := Labels{{"job", "docker"}, {"source", "events"}}
	meta := Labels{{"container_id", "0123456789ab"}, {"empty", ""}, {"", "no-name"}}
	cases := map[string][]pushEntry{
		"one entry":          {{labels: a, key: a.String(), ts: 1_700_000_000_123_456_789, line: "hello"}},
		"streams interleave": {{labels: a, key: a.String(), ts: 1, line: "a1"}, {labels: b, key: b.String(), ts: 2, line: "b1"}, {labels: a, key: a.String(), ts: 3, line: "a2"}},
		"metadata":           {{labels: a, key: a.String(), ts: 5e9, line: "x", metadata: meta}},
		"empty line":         {{labels: a, key: a.String(), ts: 7, line: ""}},
		"zero instant":       {{labels: a, key: a.String(), ts: 0, line: "epoch"}},
		"before the epoch":   {{labels: a, key: a.String(), ts: -1, line: "neg"}, {labels: a, key: a.String(), ts: -1_500_000_000, line: "neg2"}},
		"extremes":           {{labels: a, key: a.String(), ts: math.MaxInt64, line: "max"}, {labels: a, key: a.String(), ts: math.MinInt64, line: "min"}},
		"empty labels":       {{key: "", ts: 9, line: "no labels"}},
		"long line":          {{labels: a, key: a.String(), ts: 10, line: string(bytes.Repeat([]byte("z"), 70_000))}},
		"no entries":         nil,
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			raw := checkLokiEncoding(t, entries)
			var back push.PushRequest
			if err := back.Unmarshal(raw); err != nil {
				t.Fatalf("pkg/push cannot decode it: %v", err)
			}
			var lines []string
			for _, s := range back.Streams {
				for _, e := range s.Entries {
					lines = append(lines, e.Line)
				}
			}
			var wantLines []string
			order, by := group(entries)
			for _, k := range order {
				for _, e := range by[k] {
					wantLines = append(wantLines, e.line)
				}
			}
			if len(lines) != len(wantLines) {
				t.Fatalf("decoded %d entries, want %d", len(lines), len(wantLines))
			}
			for i := range wantLines {
				if lines[i] != wantLines[i] {
					t.Fatalf("entry %d: line %.20q, want %.20q", i, lines[i], wantLines[i])
				}
			}
		})
	}
}

// checkLokiEncoding encodes entries and fails unless the snappy-decoded
// bytes equal Loki's own Marshal of them; it returns those bytes.
func checkLokiEncoding(t testing.TB, entries []pushEntry) []byte {
	t.Helper()
	raw, err := snappy.Decode(nil, encodeProtobuf(entries))
	if err != nil {
		t.Fatalf("snappy: %v", err)
	}
	want, err := lokiMarshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Fatalf("wire bytes differ from pkg/push's Marshal:\n got %x\nwant %x", head(raw), head(want))
	}
	return raw
}

// lokiMarshal is the reference: the request built from Loki's types.
func lokiMarshal(entries []pushEntry) ([]byte, error) {
	order, by := group(entries)
	req := push.PushRequest{Streams: make([]push.Stream, 0, len(order))}
	for _, k := range order {
		st := push.Stream{Labels: k}
		for _, e := range by[k] {
			pe := push.Entry{Timestamp: time.Unix(0, e.ts), Line: e.line}
			for _, m := range e.metadata {
				pe.StructuredMetadata = append(pe.StructuredMetadata, push.LabelAdapter{Name: m.Name, Value: m.Value})
			}
			st.Entries = append(st.Entries, pe)
		}
		req.Streams = append(req.Streams, st)
	}
	return req.Marshal()
}

func head(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// FuzzEncodeProtobuf compares the encoder with Loki's types on arbitrary
// label strings, lines, metadata and times, two entries at a time (in one
// stream or two).
func FuzzEncodeProtobuf(f *testing.F) {
	f.Add(`{job="docker"}`, "line", "container_id", "abc", int64(1_700_000_000_000_000_001), `{job="other"}`, "", int64(-1))
	f.Add("", "", "", "", int64(0), "", "\xff\x00", int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, key1, line1, metaName, metaValue string, ts1 int64, key2, line2 string, ts2 int64) {
		entries := []pushEntry{
			{key: key1, ts: ts1, line: line1, metadata: Labels{{metaName, metaValue}}},
			{key: key2, ts: ts2, line: line2},
		}
		checkLokiEncoding(t, entries)
	})
}
