package lokitest

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// fixedNow is the server clock in tests: validation windows are computed
// from it, so no test depends on the wall clock.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixedNow }
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ns(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

func post(t *testing.T, s *Server, contentType string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.PushURL(), bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func pushJSON(t *testing.T, s *Server, body string) (int, string) {
	t.Helper()
	return post(t, s, "application/json", []byte(body), nil)
}

func mustQuery(t *testing.T, s *Server, q string) []Stream {
	t.Helper()
	st, err := s.Query("fake", q, fixedNow.Add(-30*24*time.Hour), fixedNow.Add(time.Hour), 0, true)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return st
}

func lines(streams []Stream) []string {
	var out []string
	for _, st := range streams {
		for _, e := range st.Entries {
			out = append(out, e.Line)
		}
	}
	return out
}

func TestPushAnswers204EmptyAndIsQueryableAtOnce(t *testing.T) {
	s := start(t, Config{})
	code, body := pushJSON(t, s, fmt.Sprintf(`{"streams":[{"stream":{"job":"infra","tier":"gateway"},"values":[["%s","hello"]]}]}`, ns(fixedNow)))
	if code != http.StatusNoContent || body != "" {
		t.Fatalf("push answered %d %q, want 204 with an empty body", code, body)
	}
	got := mustQuery(t, s, `{job="infra", tier="gateway"}`)
	if len(got) != 1 || len(got[0].Entries) != 1 || got[0].Entries[0].Line != "hello" {
		t.Fatalf("query returned %+v", got)
	}
	// Loki 3 adds service_name (from job here: no service label) and
	// detected_level (structured metadata, merged into result labels).
	if v := got[0].Labels.Get("service_name"); v != "infra" {
		t.Errorf("service_name = %q, want infra", v)
	}
	if !got[0].Labels.Has("detected_level") {
		t.Errorf("result labels %s lack detected_level", got[0].Labels)
	}
}

func TestPushRejectsWhatLokiRejects(t *testing.T) {
	s := start(t, Config{})
	for _, tc := range []struct {
		name, body string
		status     int
		contains   string
	}{
		{"numeric timestamp", fmt.Sprintf(`{"streams":[{"stream":{"a":"b"},"values":[[%s,"x"]]}]}`, ns(fixedNow)), 400, "timestamp must be a string"},
		{"ISO date timestamp", `{"streams":[{"stream":{"a":"b"},"values":[["2026-03-01T12:00:00Z","x"]]}]}`, 400, "Unix nanoseconds"},
		{"empty body", ``, 400, "empty"},
		{"malformed JSON", `{"streams":[`, 400, "JSON"},
		{"not an object", `[1,2]`, 400, "JSON"},
		{"line not a string", fmt.Sprintf(`{"streams":[{"stream":{"a":"b"},"values":[["%s",5]]}]}`, ns(fixedNow)), 400, "line must be a string"},
		{"one-element value", fmt.Sprintf(`{"streams":[{"stream":{"a":"b"},"values":[["%s"]]}]}`, ns(fixedNow)), 400, "elements"},
		{"invalid label name", fmt.Sprintf(`{"streams":[{"stream":{"a-b":"c"},"values":[["%s","x"]]}]}`, ns(fixedNow)), 400, "invalid label name"},
		{"empty object", `{}`, 422, "at least one valid stream is required"},
		{"empty streams", `{"streams":[]}`, 422, "at least one valid stream is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := pushJSON(t, s, tc.body)
			if code != tc.status || !strings.Contains(body, tc.contains) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.status, tc.contains)
			}
		})
	}
	if st := s.Stats(); st.Accepted != 0 {
		t.Fatalf("accepted %d entries from rejected requests", st.Accepted)
	}
}

func TestStreamWithoutLabelsIsStoredAsUnknownService(t *testing.T) {
	s := start(t, Config{})
	code, _ := pushJSON(t, s, fmt.Sprintf(`{"streams":[{"stream":{},"values":[["%s","orphan"]]}]}`, ns(fixedNow)))
	if code != 204 {
		t.Fatalf("push answered %d", code)
	}
	got := s.Streams("fake")
	if len(got) != 1 || got[0].Labels.String() != `{service_name="unknown_service"}` {
		t.Fatalf("streams = %+v", got)
	}
}

func TestServiceNameFollowsLokiDiscoveryOrder(t *testing.T) {
	s := start(t, Config{})
	pushJSON(t, s, fmt.Sprintf(`{"streams":[{"stream":{"job":"infra","service":"traefik"},"values":[["%s","x"]]}]}`, ns(fixedNow)))
	if got := s.Streams("fake")[0].Labels.Get("service_name"); got != "traefik" {
		t.Fatalf("service_name = %q, want traefik (service precedes job in discover_service_name)", got)
	}
}

func TestTimestampWindowsAndPartialAcceptance(t *testing.T) {
	s := start(t, Config{})
	stream := `{"job":"w"}`
	push := func(ts ...time.Time) (int, string) {
		var vals []string
		for i, x := range ts {
			vals = append(vals, fmt.Sprintf(`["%s","line %d"]`, ns(x), i))
		}
		return pushJSON(t, s, fmt.Sprintf(`{"streams":[{"stream":%s,"values":[%s]}]}`, stream, strings.Join(vals, ",")))
	}
	if code, body := push(fixedNow); code != 204 {
		t.Fatalf("newest entry: %d %s", code, body)
	}
	if code, body := push(fixedNow.Add(-59 * time.Minute)); code != 204 {
		t.Fatalf("59 min behind the newest should be accepted, got %d %s", code, body)
	}
	code, body := push(fixedNow.Add(-2*time.Hour), fixedNow.Add(-time.Minute))
	if code != 400 || !strings.Contains(body, "entry too far behind") {
		t.Fatalf("2 h behind: got %d %q", code, body)
	}
	if code, body := push(fixedNow.Add(-8 * 24 * time.Hour)); code != 400 || !strings.Contains(body, "timestamp too old") {
		t.Fatalf("older than retention: got %d %q", code, body)
	}
	if code, body := push(fixedNow.Add(time.Hour)); code != 400 || !strings.Contains(body, "too new") {
		t.Fatalf("an hour in the future: got %d %q", code, body)
	}
	// The valid entry of the 400 request was stored, as Loki does.
	if n := len(lines(mustQuery(t, s, `{job="w"}`))); n != 3 {
		t.Fatalf("stored %d entries, want 3 (newest, 59 min behind, 1 min behind)", n)
	}
}

func TestExactDuplicateIsStoredOnce(t *testing.T) {
	s := start(t, Config{})
	body := fmt.Sprintf(`{"streams":[{"stream":{"job":"d"},"values":[["%s","same"],["%s","same"],["%s","other"]]}]}`, ns(fixedNow), ns(fixedNow), ns(fixedNow))
	for range 2 {
		if code, b := pushJSON(t, s, body); code != 204 {
			t.Fatalf("push: %d %s", code, b)
		}
	}
	if got := lines(mustQuery(t, s, `{job="d"}`)); len(got) != 2 {
		t.Fatalf("stored %v, want [same other]", got)
	}
	if st := s.Stats(); st.Duplicates != 4 || st.Accepted != 2 {
		t.Fatalf("stats %+v, want 2 accepted and 4 duplicates", st)
	}
}

func protoBody(t *testing.T, streams ...push.Stream) []byte {
	t.Helper()
	req := push.PushRequest{Streams: streams}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

func TestPushProtobufSnappyWithStructuredMetadata(t *testing.T) {
	s := start(t, Config{})
	body := protoBody(t, push.Stream{
		Labels: `{job="infra", tier="gateway"}`,
		Entries: []push.Entry{{
			Timestamp:          fixedNow,
			Line:               `level=error msg="boom"`,
			StructuredMetadata: push.LabelsAdapter{{Name: "container_id", Value: "abc"}},
		}},
	})
	if code, b := post(t, s, "application/x-protobuf", body, nil); code != 204 {
		t.Fatalf("push: %d %s", code, b)
	}
	got := mustQuery(t, s, `{tier="gateway"} | container_id="abc" | detected_level="error"`)
	if len(got) != 1 || got[0].Labels.Get("container_id") != "abc" {
		t.Fatalf("query = %+v", got)
	}
	// Broken snappy and broken protobuf are 400s.
	if code, _ := post(t, s, "application/x-protobuf", []byte("not snappy"), nil); code != 400 {
		t.Fatalf("bad snappy answered %d", code)
	}
	if code, _ := post(t, s, "application/x-protobuf", snappy.Encode(nil, []byte{0xff, 0xff, 0xff}), nil); code != 400 {
		t.Fatalf("bad protobuf answered %d", code)
	}
	if code, _ := post(t, s, "application/x-protobuf", protoBody(t, push.Stream{Labels: `{job=~"x"}`, Entries: []push.Entry{{Timestamp: fixedNow, Line: "x"}}}), nil); code != 400 {
		t.Fatalf("a regexp matcher in a pushed label set answered %d", code)
	}
	if code, b := post(t, s, "application/x-protobuf", protoBody(t, push.Stream{Labels: `{a="1", a="2"}`, Entries: []push.Entry{{Timestamp: fixedNow, Line: "x"}}}), nil); code != 400 || !strings.Contains(b, "duplicate label name") {
		t.Fatalf("duplicate label names answered %d %q", code, b)
	}
}

// TestPushSnappyLengthHeaderIsCheckedBeforeDecoding: a snappy block starts
// with its decoded length, and snappy.Decode allocates that much first. A
// 12-byte body claiming 3.5 GB (FuzzPush found it: the fuzz worker ran out of
// memory) must be refused from its header, as Loki does, without the
// allocation; so must an honest block that decompresses beyond MaxBodyBytes.
func TestPushSnappyLengthHeaderIsCheckedBeforeDecoding(t *testing.T) {
	const limit = 1 << 20
	liar := []byte("\xab\xab\xab\xab\r\xab\xab\xab'\t0")
	claimed, err := snappy.DecodedLen(liar)
	if err != nil || claimed < 1<<30 {
		t.Fatalf("test input: snappy header states %d bytes (%v), want more than 1 GiB", claimed, err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, herr := decodePush("application/x-protobuf", "", bytes.NewReader(liar), limit)
	runtime.ReadMemStats(&after)
	if herr == nil || herr.status != http.StatusRequestEntityTooLarge || !strings.Contains(herr.msg, "larger than max") {
		t.Fatalf("a header claiming %d bytes answered %+v, want 413 received message larger than max", claimed, herr)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("refusing a header claiming %d bytes allocated %d bytes", claimed, grew)
	}

	s := start(t, Config{MaxBodyBytes: limit})
	if code, b := post(t, s, "application/x-protobuf", liar, nil); code != http.StatusRequestEntityTooLarge || !strings.Contains(b, "larger than max") {
		t.Fatalf("server answered %d %q to the lying header", code, b)
	}
	// Six 200 KiB lines of one letter each: 1.2 MiB decoded, a few KiB sent.
	var entries []push.Entry
	for i, c := range "abcdef" {
		entries = append(entries, push.Entry{Timestamp: fixedNow.Add(time.Duration(i) * time.Second), Line: strings.Repeat(string(c), 200<<10)})
	}
	big := protoBody(t, push.Stream{Labels: `{job="big"}`, Entries: entries})
	if len(big) >= limit {
		t.Fatalf("test input: %d compressed bytes, want under the %d limit", len(big), limit)
	}
	if code, b := post(t, s, "application/x-protobuf", big, nil); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a %d-byte block decompressing beyond %d answered %d %q", len(big), limit, code, b)
	}
	if st := s.Stats(); st.Accepted != 0 {
		t.Fatalf("accepted %d entries from refused requests", st.Accepted)
	}
}

func TestPushJSONGzip(t *testing.T) {
	s := start(t, Config{})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, `{"streams":[{"stream":{"job":"z"},"values":[["%s","zipped",{"trace_id":"t1"}]]}]}`, ns(fixedNow))
	zw.Close()
	if code, b := post(t, s, "application/json", buf.Bytes(), map[string]string{"Content-Encoding": "gzip"}); code != 204 {
		t.Fatalf("push: %d %s", code, b)
	}
	if got := mustQuery(t, s, `{job="z"} |= "zip"`); len(got) != 1 || got[0].Labels.Get("trace_id") != "t1" {
		t.Fatalf("query = %+v", got)
	}
	if code, _ := post(t, s, "application/json", []byte("x"), map[string]string{"Content-Encoding": "br"}); code != http.StatusUnsupportedMediaType {
		t.Fatalf("unknown Content-Encoding answered %d", code)
	}
}

func TestTenantsAndAuth(t *testing.T) {
	s := start(t, Config{MultiTenant: true, BasicAuthUser: "u", BasicAuthPassword: "p"})
	body := []byte(fmt.Sprintf(`{"streams":[{"stream":{"job":"t"},"values":[["%s","x"]]}]}`, ns(fixedNow)))
	auth := "Basic dTpw" // u:p
	if code, _ := post(t, s, "application/json", body, map[string]string{"X-Scope-OrgID": "team-a"}); code != 401 {
		t.Fatalf("missing basic auth answered %d", code)
	}
	if code, b := post(t, s, "application/json", body, map[string]string{"Authorization": auth}); code != 401 || !strings.Contains(b, "no org id") {
		t.Fatalf("missing tenant answered %d %q", code, b)
	}
	if code, b := post(t, s, "application/json", body, map[string]string{"Authorization": auth, "X-Scope-OrgID": "team-a"}); code != 204 {
		t.Fatalf("authorised push answered %d %s", code, b)
	}
	if st := s.Stats(); st.Tenants["team-a"] != 1 {
		t.Fatalf("tenants = %v", st.Tenants)
	}
	if got := s.Streams("fake"); len(got) != 0 {
		t.Fatalf("tenant fake sees %v", got)
	}

	b := start(t, Config{BearerToken: "tok"})
	if code, _ := post(t, b, "application/json", body, map[string]string{"Authorization": "Bearer nope"}); code != 401 {
		t.Fatalf("wrong bearer token answered %d", code)
	}
	if code, _ := post(t, b, "application/json", body, map[string]string{"Authorization": "Bearer tok"}); code != 204 {
		t.Fatalf("right bearer token answered %d", code)
	}
}

func TestKnobsFailSlowDownUp(t *testing.T) {
	s := start(t, Config{})
	body := fmt.Sprintf(`{"streams":[{"stream":{"job":"k"},"values":[["%s","x"]]}]}`, ns(fixedNow))
	s.FailNext(2, 429)
	for i := range 2 {
		if code, _ := pushJSON(t, s, body); code != 429 {
			t.Fatalf("push %d answered %d, want 429", i, code)
		}
	}
	if code, _ := pushJSON(t, s, body); code != 204 {
		t.Fatalf("after FailNext ran out: %d", code)
	}
	s.SetFailing(500)
	if code, _ := pushJSON(t, s, body); code != 500 {
		t.Fatalf("SetFailing(500): %d", code)
	}
	s.ClearFailing()

	s.SetDelay(50 * time.Millisecond)
	t0 := time.Now()
	pushJSON(t, s, body)
	if time.Since(t0) < 50*time.Millisecond {
		t.Fatalf("SetDelay did not delay the push")
	}
	s.SetDelay(0)

	url := s.URL()
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Post(s.PushURL(), "application/json", strings.NewReader(body)); err == nil {
		t.Fatalf("push succeeded while the server was down")
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	if s.URL() != url {
		t.Fatalf("came back on %s, was %s", s.URL(), url)
	}
	if code, _ := pushJSON(t, s, body); code != 204 {
		t.Fatalf("after Up: %d", code)
	}
	if got := lines(mustQuery(t, s, `{job="k"}`)); len(got) != 1 {
		t.Fatalf("entries after down/up: %v", got)
	}
}

func TestTLS(t *testing.T) {
	s := start(t, Config{TLS: true})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM()) {
		t.Fatal("CA PEM not usable")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(s.URL() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("ready over TLS: %d %s", resp.StatusCode, s.URL())
	}
}

func getJSON(t *testing.T, s *Server, path string, params url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(s.URL() + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

func TestQueryAPI(t *testing.T) {
	s := start(t, Config{})
	var vals []string
	for i := range 5 {
		vals = append(vals, fmt.Sprintf(`["%s","req %d status=%d"]`, ns(fixedNow.Add(time.Duration(i)*time.Second)), i, 200+100*(i%3)))
	}
	pushJSON(t, s, fmt.Sprintf(`{"streams":[{"stream":{"job":"infra","tier":"gateway"},"values":[%s]},{"stream":{"job":"infra","tier":"data"},"values":[["%s","db up"]]},{"stream":{"job":"app","tier":"app"},"values":[["%s","app up"]]}]}`,
		strings.Join(vals, ","), ns(fixedNow), ns(fixedNow)))

	for _, tc := range []struct {
		q    string
		want int
	}{
		{`{job="infra"}`, 6},
		{`{job="infra", tier!="data"}`, 5},
		{`{job=~"inf.*"}`, 6},
		{`{job=~"inf"}`, 0}, // anchored
		{`{job="infra", tier!~"gate.*"}`, 1},
		{`{job="infra"} |= "status=400"`, 1},
		{`{job="infra"} != "status"`, 1},
		{`{job="infra"} |~ "status=[34]00"`, 3},
		{"{job=\"infra\"} !~ `req [0-3]`", 2},
		{`{job="infra"} |= "req" |= "200"`, 2},
		{`{tier="gateway",}`, 5},
	} {
		if got := lines(mustQuery(t, s, tc.q)); len(got) != tc.want {
			t.Errorf("%s returned %d lines %v, want %d", tc.q, len(got), got, tc.want)
		}
	}

	p := url.Values{"query": {`{tier="gateway"}`}, "start": {ns(fixedNow.Add(-time.Minute))}, "end": {ns(fixedNow.Add(time.Minute))}, "limit": {"2"}}
	code, m := getJSON(t, s, "/loki/api/v1/query_range", p)
	if code != 200 || m["status"] != "success" {
		t.Fatalf("query_range: %d %v", code, m)
	}
	res := m["data"].(map[string]any)["result"].([]any)
	var got []string
	for _, r := range res {
		for _, v := range r.(map[string]any)["values"].([]any) {
			got = append(got, v.([]any)[1].(string))
		}
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "req 4") {
		t.Fatalf("backward limit 2 returned %v, want the two newest, newest first", got)
	}
	p.Set("direction", "forward")
	_, m = getJSON(t, s, "/loki/api/v1/query_range", p)
	first := m["data"].(map[string]any)["result"].([]any)[0].(map[string]any)["values"].([]any)[0].([]any)[1]
	if !strings.HasPrefix(first.(string), "req 0") {
		t.Fatalf("forward returned %v first", first)
	}
	// RFC 3339 and float-seconds times are accepted too.
	p.Set("start", fixedNow.Add(-time.Minute).Format(time.RFC3339))
	p.Set("end", fmt.Sprintf("%d.5", fixedNow.Add(time.Minute).Unix()))
	if code, m := getJSON(t, s, "/loki/api/v1/query_range", p); code != 200 {
		t.Fatalf("RFC3339/float times: %d %v", code, m)
	}

	for _, bad := range []string{`{}`, `{job=~".*"}`, `{job="x"`, `job="x"`, `{job="x"} | json`, `sum(rate({job="x"}[1m]))`} {
		if code, _ := getJSON(t, s, "/loki/api/v1/query_range", url.Values{"query": {bad}}); code != 400 {
			t.Errorf("query %s answered %d, want 400", bad, code)
		}
	}
	if code, m := getJSON(t, s, "/loki/api/v1/query", url.Values{"query": {`{job="infra"}`}}); code != 400 || !strings.Contains(fmt.Sprint(m), "instant query") {
		t.Errorf("instant log query answered %d %v", code, m)
	}

	win := url.Values{"start": {ns(fixedNow.Add(-time.Minute))}, "end": {ns(fixedNow.Add(time.Minute))}}
	_, m = getJSON(t, s, "/loki/api/v1/labels", win)
	if fmt.Sprint(m["data"]) != "[job service_name tier]" {
		t.Errorf("labels = %v", m["data"])
	}
	_, m = getJSON(t, s, "/loki/api/v1/label/tier/values", win)
	if fmt.Sprint(m["data"]) != "[app data gateway]" {
		t.Errorf("tier values = %v", m["data"])
	}
	win.Set("match[]", `{job="infra"}`)
	_, m = getJSON(t, s, "/loki/api/v1/series", win)
	if n := len(m["data"].([]any)); n != 2 {
		t.Errorf("series = %v", m["data"])
	}
	if code, _ := getJSON(t, s, "/ready", nil); code != 200 {
		t.Errorf("ready answered %d", code)
	}
}

func TestParseQueryErrorsNamePosition(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{`{job="x"`, "col 9"},
		{`{job ~ "x"}`, "expected one of"},
		{`{job="x"} |~ "("`, "invalid regexp"},
		{`{job="x"} |= "a" or "b"`, "not supported"},
		{`{job="unterminated}`, "unterminated"},
		{`{9job="x"}`, "label name"},
	} {
		_, err := ParseQuery(tc.q)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseQuery(%s) = %v, want an error containing %q", tc.q, err, tc.want)
		}
	}
}

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels(` { job="infra" , msg="a \"quoted\" \u00e9" } `)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Value != `a "quoted" é` {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{`job="x"`, `{job!="x"}`, `{job="x"} extra`, `{job="x" tier="y"}`, `{="x"}`} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%s) accepted", bad)
		}
	}
}

func TestDetectLevel(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`level=warn msg=x`, "warn"},
		{`{"level":"ERROR","msg":"x"}`, "error"},
		{`panic: runtime error`, "fatal"},
		{`GET /healthz 200`, "unknown"},
		{`INFO started`, "info"},
	} {
		if got := detectLevel(tc.line, nil, nil); got != tc.want {
			t.Errorf("detectLevel(%q) = %s, want %s", tc.line, got, tc.want)
		}
	}
}

func TestOutOfOrderEntriesComeBackInTimestampOrder(t *testing.T) {
	s := start(t, Config{})
	for i, sec := range []int{3, 1, 2, 1} { // the second 1 has another line: not a duplicate
		pushJSON(t, s, fmt.Sprintf(`{"streams":[{"stream":{"job":"o"},"values":[["%s","push %d at %d"]]}]}`, ns(fixedNow.Add(time.Duration(sec)*time.Second)), i, sec))
	}
	st, err := s.Query("fake", `{job="o"}`, fixedNow, fixedNow.Add(time.Minute), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	var ts []int64
	for _, e := range st[0].Entries {
		ts = append(ts, e.Timestamp.UnixNano())
	}
	if !slices.IsSorted(ts) || len(ts) != 4 {
		t.Fatalf("forward query returned %v", lines(st))
	}
}
