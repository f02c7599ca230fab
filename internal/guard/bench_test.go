package guard

import (
	"testing"
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
