// Package human writes numbers and words for people: counts with their noun,
// byte sizes, and strings cut to a length. Every report and log line that
// says "3 containers" or "288.0 MiB" says it through here, so that the same
// figure reads the same everywhere.
//
// It formats values; it must not know what they measure.
package human

import (
	"fmt"
	"unicode/utf8"
)

// Plural is a count with its noun: "1 file", "3 files". The plural is the
// noun with an s; every noun the tool counts takes one.
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Bytes is a size in binary units: "900 B", "5.0 KiB", "288.0 MiB",
// "8.00 GiB"; negative sizes (a deficit) keep their sign.
func Bytes(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	var s string
	switch {
	case n >= 1<<30:
		s = fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		s = fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		s = fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		s = fmt.Sprintf("%d B", n)
	}
	if neg {
		return "-" + s
	}
	return s
}

// Truncate cuts s to at most n bytes and marks the cut with an ellipsis. It
// never splits a UTF-8 sequence: the cut moves back to a rune boundary.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
