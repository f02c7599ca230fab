package guard

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/hy-home/hyhome/internal/dockertest"
)

// BenchmarkClassify measures the routing and profile steps on the paths
// read-only consumers call most.
func BenchmarkClassify(b *testing.B) {
	reqs := []string{
		"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n",
		"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\n\r\n",
		"GET /v1.41/containers/0123456789ab/json HTTP/1.1\r\nHost: docker\r\n\r\n",
		"GET /v1.41/events?filters=%7B%7D HTTP/1.1\r\nHost: docker\r\n\r\n",
	}
	for _, raw := range reqs {
		r, err := parseRaw(raw)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(r.URL.Path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, d := classify(r, ProfileReadonly); d != nil {
					b.Fatal(d)
				}
			}
		})
	}
}

// BenchmarkProxyPing measures an allowed GET /_ping through the guard to the
// real engine, with the verdict log on (as the CLI runs it), from parallel
// clients on kept-alive connections. Profile it with -cpuprofile.
func BenchmarkProxyPing(b *testing.B) {
	tg := startGuard(b, func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil)) })
	sock := tg.sockets[ProfileReadonly]
	b.RunParallel(func(pb *testing.PB) {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
		defer hc.CloseIdleConnections()
		for pb.Next() {
			resp, err := hc.Get("http://docker/_ping")
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkJudgeCreate measures the admission of a compliant container
// create (decode, workload, every rule, verdict) without the engine's
// answer: the guard's own CPU for a create.
func BenchmarkJudgeCreate(b *testing.B) {
	tg := startGuard(b)
	img := dockertest.Build(b)
	body := mustJSON(b, compliant(img.NonRoot))
	r, err := http.NewRequest("POST", "/v1.41/containers/create", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	t, d := canonicalize(r)
	if d != nil {
		b.Fatal(d)
	}
	adm := tg.g.profiles[ProfileAdmission]
	b.ReportAllocs()
	for b.Loop() {
		if v := tg.g.admission.judge(context.Background(), adm, t, r, []byte(body)); v.deny != nil {
			b.Fatal(v.deny)
		}
	}
}
