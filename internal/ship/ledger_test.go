package ship

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hy-home/hyhome/internal/lokitest"
)

// seqLedger records, by sequence number, every push Loki received of the
// lines one testprog writer logs ("<prefix> <token> seq=<n> ..."): entries
// Loki stored and exact duplicates it dropped alike. Loss and duplication are
// then judged line by line, by content, not by a count that a missing line
// and a duplicated one could balance.
type seqLedger struct {
	tok string
	n   int

	mu      sync.Mutex
	pushes  []int            // by seq: how many times Loki received it
	order   map[string][]int // by the entry's stream label: seqs in the order Loki first stored them
	foreign []string         // lines with the token but no seq in 0..n-1
}

// newSeqLedger hooks a ledger into cfg (before the server starts) for the n
// lines carrying tok.
func newSeqLedger(cfg *lokitest.Config, tok string, n int) *seqLedger {
	l := &seqLedger{tok: tok, n: n, pushes: make([]int, n), order: map[string][]int{}}
	prevAccept, prevDup := cfg.OnAccept, cfg.OnDuplicate
	cfg.OnAccept = func(tenant string, st lokitest.Labels, e lokitest.Entry) {
		if prevAccept != nil {
			prevAccept(tenant, st, e)
		}
		l.record(st.Get("stream"), e.Line, true)
	}
	cfg.OnDuplicate = func(tenant string, st lokitest.Labels, e lokitest.Entry) {
		if prevDup != nil {
			prevDup(tenant, st, e)
		}
		l.record(st.Get("stream"), e.Line, false)
	}
	return l
}

func (l *seqLedger) record(stream, line string, stored bool) {
	if !strings.Contains(line, l.tok) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, ok := parseSeq(line, l.tok)
	if !ok || seq >= l.n {
		l.foreign = append(l.foreign, line)
		return
	}
	l.pushes[seq]++
	if stored {
		l.order[stream] = append(l.order[stream], seq)
	}
}

// parseSeq reads n from "... <tok> seq=<n>[ ...]".
func parseSeq(line, tok string) (int, bool) {
	_, rest, ok := strings.Cut(line, tok+" seq=")
	if !ok {
		return 0, false
	}
	digits, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || strconv.Itoa(n) != digits {
		return 0, false
	}
	return n, true
}

// received is how many distinct lines Loki has received so far.
func (l *seqLedger) received() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.pushes {
		if p > 0 {
			n++
		}
	}
	return n
}

// ledgerState is a copy of a ledger at one moment.
type ledgerState struct {
	pushes []int
	order  map[string][]int
}

func (l *seqLedger) snapshot() ledgerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := ledgerState{pushes: append([]int(nil), l.pushes...), order: map[string][]int{}}
	for k, v := range l.order {
		s.order[k] = append([]int(nil), v...)
	}
	return s
}

// received is how many distinct lines had been received at the snapshot.
func (s ledgerState) received() int {
	n := 0
	for _, p := range s.pushes {
		if p > 0 {
			n++
		}
	}
	return n
}

// duplicates lists the seqs received more than once, and the number of
// extra pushes.
func (s ledgerState) duplicates() (seqs []int, extra int) {
	for seq, p := range s.pushes {
		if p > 1 {
			seqs = append(seqs, seq)
			extra += p - 1
		}
	}
	return seqs, extra
}

// checkNoForeign fails on lines that carry the token but no valid seq.
func (l *seqLedger) checkNoForeign(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.foreign) > 0 {
		t.Errorf("%d lines with token %s but no seq in 0..%d, first %.80q", len(l.foreign), l.tok, l.n-1, l.foreign[0])
	}
}

// storedOnce checks that what a query returns holds each seq 0..n-1
// exactly once, and reports every missing and duplicated seq.
func storedOnce(entries []lokitest.Entry, tok string, n int) error {
	count := make([]int, n)
	var foreign []string
	for _, e := range entries {
		seq, ok := parseSeq(e.Line, tok)
		if !ok || seq >= n {
			foreign = append(foreign, e.Line)
			continue
		}
		count[seq]++
	}
	var missing, dup []int
	for seq, c := range count {
		switch {
		case c == 0:
			missing = append(missing, seq)
		case c > 1:
			dup = append(dup, seq)
		}
	}
	if len(missing) == 0 && len(dup) == 0 && len(foreign) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d entries for %d lines: %d missing %s, %d stored more than once %s", len(entries), n, len(missing), seqRanges(missing), len(dup), seqRanges(dup))
	if len(foreign) > 0 {
		msg += fmt.Sprintf(", %d without a seq in range (first %.80q)", len(foreign), foreign[0])
	}
	return fmt.Errorf("%s", msg)
}

// seqRanges renders sorted seqs as compact ranges: [0-3 7 9-10].
func seqRanges(seqs []int) string {
	seqs = append([]int(nil), seqs...)
	sort.Ints(seqs)
	var parts []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(seqs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", seqs[i], seqs[j]))
		}
		if len(parts) == 20 && j+1 < len(seqs) {
			parts = append(parts, "...")
			break
		}
		i = j + 1
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// repushedSuffix checks docs/ship.md's bound on what a crash pushes twice:
// only lines Loki had received before the crash (at), each at most once
// more, and per stream exactly a suffix of what Loki had stored by then:
// the agent pushes again what followed its last checkpoint, nothing
// earlier.
func repushedSuffix(at, after ledgerState) error {
	var errs []string
	for seq, p := range after.pushes {
		switch {
		case p > 2:
			errs = append(errs, fmt.Sprintf("seq %d received %d times; one crash can push a line again once", seq, p))
		case p == 2 && at.pushes[seq] == 0:
			errs = append(errs, fmt.Sprintf("seq %d received twice but not before the crash", seq))
		}
	}
	for stream, order := range at.order {
		first := -1 // index of the first line pushed again
		for i, seq := range order {
			again := after.pushes[seq] > 1
			if again && first < 0 {
				first = i
			}
			if !again && first >= 0 {
				errs = append(errs, fmt.Sprintf("stream %s: seq %d was pushed again but seq %d, stored after it before the crash, was not", stream, order[first], seq))
				break
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// The checks themselves, on made-up ledgers: a missing and a duplicated line
// are both reported even where their counts balance, and a re-push outside
// the crash's suffix is caught.
func TestSeqLedgerChecks(t *testing.T) {
	entries := func(seqs ...int) []lokitest.Entry {
		var out []lokitest.Entry
		for _, s := range seqs {
			out = append(out, lokitest.Entry{Line: fmt.Sprintf("line tok seq=%d xxxx", s)})
		}
		return out
	}
	if err := storedOnce(entries(0, 1, 2, 3), "tok", 4); err != nil {
		t.Errorf("complete set refused: %v", err)
	}
	err := storedOnce(entries(0, 1, 1, 3), "tok", 4) // four entries for four lines
	if err == nil || !strings.Contains(err.Error(), "1 missing [2]") || !strings.Contains(err.Error(), "1 stored more than once [1]") {
		t.Errorf("balanced loss and duplicate: %v", err)
	}
	err = storedOnce(append(entries(0, 1, 2, 3), lokitest.Entry{Line: "line tok seq=9"}, lokitest.Entry{Line: "line tok seq=x"}), "tok", 4)
	if err == nil || !strings.Contains(err.Error(), "2 without a seq in range") {
		t.Errorf("out-of-range lines: %v", err)
	}
	if got := seqRanges([]int{9, 0, 1, 2, 3, 7, 10}); got != "[0-3 7 9-10]" {
		t.Errorf("seqRanges = %s", got)
	}

	cfg := lokitest.Config{}
	l := newSeqLedger(&cfg, "tok", 6)
	for _, s := range []int{0, 1, 2, 3} {
		cfg.OnAccept("fake", lokitest.Labels{{Name: "stream", Value: "stdout"}}, lokitest.Entry{Line: fmt.Sprintf("line tok seq=%d", s)})
	}
	at := l.snapshot()
	dupe := func(s int) {
		cfg.OnDuplicate("fake", lokitest.Labels{{Name: "stream", Value: "stdout"}}, lokitest.Entry{Line: fmt.Sprintf("line tok seq=%d", s)})
	}
	dupe(2)
	dupe(3)
	if err := repushedSuffix(at, l.snapshot()); err != nil {
		t.Errorf("suffix refused: %v", err)
	}
	if seqs, extra := l.snapshot().duplicates(); len(seqs) != 2 || extra != 2 {
		t.Errorf("duplicates %v, %d", seqs, extra)
	}
	dupe(1)
	dupe(1)
	cfg.OnAccept("fake", lokitest.Labels{{Name: "stream", Value: "stdout"}}, lokitest.Entry{Line: "line tok seq=5"})
	dupe(5)
	err = repushedSuffix(at, l.snapshot())
	for _, want := range []string{"seq 1 received 3 times", "seq 5 received twice but not before the crash"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("repushedSuffix: %v, want %q", err, want)
		}
	}
	l2cfg := lokitest.Config{}
	l2 := newSeqLedger(&l2cfg, "tok", 4)
	for _, s := range []int{0, 1, 2, 3} {
		l2cfg.OnAccept("fake", lokitest.Labels{{Name: "stream", Value: "stderr"}}, lokitest.Entry{Line: fmt.Sprintf("line tok seq=%d", s)})
	}
	at2 := l2.snapshot()
	l2cfg.OnDuplicate("fake", lokitest.Labels{{Name: "stream", Value: "stderr"}}, lokitest.Entry{Line: "line tok seq=1"})
	if err := repushedSuffix(at2, l2.snapshot()); err == nil || !strings.Contains(err.Error(), "seq 1 was pushed again but seq 2") {
		t.Errorf("a re-push that is not a suffix: %v", err)
	}
	if l2.received() != 4 || at2.received() != 4 {
		t.Errorf("received %d, %d", l2.received(), at2.received())
	}
}
