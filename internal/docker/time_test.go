package docker

import (
	"testing"
	"time"
)

func TestSince(t *testing.T) {
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1700000000, 5), "1700000000.000000005"},
		{time.Unix(1700000000, 123456789).In(time.FixedZone("x", 3600)), "1700000000.123456789"},
		{time.Unix(0, 0), "0.000000000"},
	} {
		if got := Since(c.t); got != c.want {
			t.Errorf("Since(%v) = %q, want %q", c.t, got, c.want)
		}
	}
}
