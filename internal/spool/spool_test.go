package spool

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestSpoolKeepsEveryByteInOrder(t *testing.T) {
	for _, limit := range []int{1, 7, 100, DefaultLimit} {
		dir := t.TempDir()
		t.Setenv("TMPDIR", dir)
		s := New(limit)
		var want bytes.Buffer
		r := rand.New(rand.NewPCG(1, uint64(limit)))
		for i := 0; i < 300; i++ {
			b := make([]byte, r.IntN(50))
			for j := range b {
				b[j] = byte(r.IntN(256))
			}
			if i%2 == 0 {
				s.Write(b)
			} else {
				s.WriteString(string(b))
			}
			want.Write(b)
		}
		if s.Len() != int64(want.Len()) {
			t.Fatalf("limit %d: Len %d, want %d", limit, s.Len(), want.Len())
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 50; k++ {
			off := r.IntN(want.Len())
			n := min(r.IntN(100), want.Len()-off)
			got := make([]byte, n)
			if _, err := s.ReadAt(got, int64(off)); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()[off:off+n]) {
				t.Fatalf("limit %d: ReadAt(%d, %d) differs", limit, off, n)
			}
		}
		var out bytes.Buffer
		if _, err := s.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want.Bytes()) {
			t.Fatalf("limit %d: WriteTo differs", limit)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("limit %d: %s left in TMPDIR while open", limit, filepath.Join(dir, ents[0].Name()))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s.Len() != 0 {
			t.Errorf("Len %d after Close", s.Len())
		}
	}
}
