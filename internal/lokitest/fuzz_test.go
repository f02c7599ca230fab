package lokitest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// FuzzParseQuery: the LogQL parser takes untrusted query strings; it must
// never panic, and what it accepts must satisfy Loki's non-empty rule.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		`{job="infra", tier="gateway"}`,
		`{job=~"a|b", x!~"y"} |= "tok" != "no" |~ "re" !~ ` + "`raw`",
		`{a="\u00e9\n"} | detected_level="error"`,
		`{}`, `{a=~".*"}`, `{a="`, `{a="x",}`, `sum(x)`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			return
		}
		ok := false
		for _, m := range q.Selector {
			if !m.Matches("") {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("accepted %q whose matchers all match the empty string", s)
		}
	})
}

// FuzzParseLabels: pushed protobuf label sets are untrusted; whatever parses
// must round-trip through Labels.String.
func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{`{job="infra"}`, `{}`, ``, `{a="1", b="x\"y"}`, `{a=`, `{a="1",}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseLabels(s)
		if err != nil {
			return
		}
		again, err := ParseLabels(Labels(ls).String())
		if err != nil {
			t.Fatalf("re-parsing %s (from %q): %v", Labels(ls), s, err)
		}
		if Labels(again).String() != Labels(ls).String() {
			t.Fatalf("round trip changed %s to %s", Labels(ls), Labels(again))
		}
	})
}

// FuzzPush feeds arbitrary bodies to both push decoders and the ingest path
// behind them: no input may panic the server.
func FuzzPush(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Add([]byte(`{"streams":[{"stream":{"job":"x"},"values":[["1772366400000000000","a",{"k":"v"}]]}]}`), false)
	f.Add([]byte(`{"streams":[{"stream":{},"values":[[1,"a"]]}]}`), false)
	f.Add([]byte(`{}`), false)
	req := push.PushRequest{Streams: []push.Stream{{Labels: `{job="x"}`, Entries: []push.Entry{{Timestamp: now, Line: "a", StructuredMetadata: push.LabelsAdapter{{Name: "k", Value: "v"}}}}}}}
	raw, _ := req.Marshal()
	f.Add(snappy.Encode(nil, raw), true)
	f.Add([]byte{0x00}, true)
	f.Fuzz(func(t *testing.T, body []byte, proto bool) {
		ct := "application/json"
		if proto {
			ct = "application/x-protobuf"
		}
		streams, herr := decodePush(ct, "", bytes.NewReader(body), 1<<20)
		if herr != nil {
			if herr.status < 400 || herr.status > 499 || strings.TrimSpace(herr.msg) == "" {
				t.Fatalf("decode error %d %q: want a 4xx with a message", herr.status, herr.msg)
			}
			return
		}
		s := &Server{cfg: Config{
			Now: func() time.Time { return now }, RejectOldSamplesMaxAge: 168 * time.Hour, CreationGracePeriod: 10 * time.Minute,
			OutOfOrderWindow: time.Hour, MaxLineSize: 256 << 10, MaxLabelNamesPerSeries: 15, DiscoverServiceName: defaultServiceNameLabels,
		}, tenants: map[string]*tenantStore{}, stats: Stats{ByStatus: map[int]int{}, Tenants: map[string]int{}}}
		s.ingest("fake", streams)
		for _, st := range s.Streams("fake") {
			if !st.Labels.Has("service_name") {
				t.Fatalf("stored stream %s lacks service_name", st.Labels)
			}
		}
	})
}
