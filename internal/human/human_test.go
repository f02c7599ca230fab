package human

import (
	"testing"
	"unicode/utf8"
)

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 containers", 1: "1 container", 2: "2 containers"} {
		if got := Plural(n, "container"); got != want {
			t.Errorf("Plural(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 900: "900 B", 5 << 10: "5.0 KiB", 288 << 20: "288.0 MiB", 8 << 30: "8.00 GiB", -18 << 20: "-18.0 MiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"a longer line", 8, "a longer…"},
		{"héllo", 2, "h…"}, // é is two bytes: the cut never splits it
		{"abc", -1, "…"},
	} {
		got := Truncate(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", 3)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Truncate(s, n%64)
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q: not valid UTF-8", s, n%64, got)
		}
	})
}
