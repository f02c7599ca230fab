package loki

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestQueryRange(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path + "?" + r.URL.RawQuery
		if r.URL.Query().Get("query") == "bad" {
			http.Error(w, strings.Repeat("x", 300), http.StatusBadRequest)
			return
		}
		w.Write([]byte(`{"status":"success","data":{"resultType":"streams","result":[
			{"stream":{"job":"infra"},"values":[["1700000000000000001","one"],["1700000000000000002","two",{"k":"v"}]]}]}}`))
	}))
	defer srv.Close()
	c := &Client{URL: srv.URL, HTTP: srv.Client(), Log: slog.New(slog.DiscardHandler)}
	es, err := c.QueryRange(context.Background(), `{job="infra"}`, time.Unix(1, 0), time.Unix(2, 0), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[1].Line != "two" || es[0].Time.UnixNano() != 1700000000000000001 || es[0].Labels["job"] != "infra" {
		t.Errorf("entries %+v", es)
	}
	if !strings.HasPrefix(got, "/loki/api/v1/query_range?") || !strings.Contains(got, "direction=forward") || !strings.Contains(got, "start=1000000000") {
		t.Errorf("request %s", got)
	}
	_, err = c.QueryRange(context.Background(), "bad", time.Unix(1, 0), time.Unix(2, 0), 10)
	if err == nil || !strings.HasPrefix(err.Error(), "query_range: it answered 400 Bad Request: xxx") || !strings.HasSuffix(err.Error(), "…") {
		t.Errorf("error answer: %v", err)
	}
	srv.Close()
	if _, err := c.QueryRange(context.Background(), "x", time.Unix(1, 0), time.Unix(2, 0), 10); err == nil || strings.Contains(err.Error(), "query_range?") {
		t.Errorf("unreachable: %v (the error must not repeat the URL)", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"status":"error"}`: `status "error"`,
		`{"status":"success","data":{"resultType":"streams","result":[{"values":[["1"]]}]}}`:     "a value with 1 elements",
		`{"status":"success","data":{"resultType":"streams","result":[{"values":[["x","l"]]}]}}`: `a bad timestamp "x"`,
		`not json`: "decoding the answer",
	} {
		if _, err := decode([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

// FuzzDecode: whatever a server answers, decoding returns entries or an
// error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1","a"]]}]}}`))
	f.Add([]byte(`{"status":"success","data":{"resultType":"streams","result":[{"values":[[1,2,3]]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decode(b)
	})
}
