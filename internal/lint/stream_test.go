package lint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hy-home/hyhome/internal/policy"
	"github.com/hy-home/hyhome/internal/testenv"
)

// scratchProjects writes n one-service projects under a temporary
// directory, in directories whose walk order is not their path order
// ("p-1/x" sorts before "p/0", the walk visits "p" first), and returns the
// directory.
func scratchProjects(t *testing.T, n int) string {
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		for _, d := range []string{fmt.Sprintf("p/%03d", i), fmt.Sprintf("p-%03d", i)} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
			yaml := fmt.Sprintf("name: s%d\nservices:\n  web:\n    image: nginx:latest\n    privileged: %v\n", i, i%2 == 0)
			if err := os.WriteFile(filepath.Join(dir, d, "compose.yaml"), []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestStreamEmitsInReportOrder: projects come in the order of their first
// file whatever order the walk and the workers find them in, the order Run
// reports in; every project once.
func TestStreamEmitsInReportOrder(t *testing.T) {
	dir := scratchProjects(t, 40)
	var got []string
	err := Stream(context.Background(), Options{Paths: []string{dir}, Policy: policy.Env{HostMemory: 8 << 30}}, nil, func(p *Project) error {
		if p.Err != nil {
			t.Errorf("%v", p.Err)
			return nil
		}
		got = append(got, p.Files[0])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 80 {
		t.Fatalf("%d projects, want 80", len(got))
	}
	if !sort.StringsAreSorted(got) {
		t.Errorf("not in path order: %v", got)
	}
	if got[0] != filepath.Join(dir, "p-000", "compose.yaml") {
		t.Errorf("first %s, want p-000 (before p/000 in path order)", got[0])
	}
	res, err := Run(context.Background(), Options{Paths: []string{dir}, Policy: policy.Env{HostMemory: 8 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 80 || res.Services != 80 || len(res.Findings) == 0 {
		t.Errorf("Run: %d files, %d services, %d findings", len(res.Files), res.Services, len(res.Findings))
	}
}

// TestStreamHoldsAWindow: however slowly projects are written, at most
// Window per worker are judged and not yet written: memory is bounded by
// the window, not the number of projects. prepare runs on the workers.
func TestStreamHoldsAWindow(t *testing.T) {
	dir := scratchProjects(t, 30)
	var held, most atomic.Int64
	err := Stream(context.Background(), Options{Paths: []string{dir}, Policy: policy.Env{HostMemory: 8 << 30}},
		func(p *Project) {
			n := held.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			p.Data = "prepared"
		},
		func(p *Project) error {
			if p.Err == nil && p.Data != "prepared" {
				t.Error("emitted a project prepare did not see")
			}
			time.Sleep(time.Millisecond) // a slow writer
			held.Add(-1)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(Window * runtime.GOMAXPROCS(0)); most.Load() > limit {
		t.Errorf("%d projects held at once, want at most %d", most.Load(), limit)
	}
}

// TestStreamStopsOnEmitError: emit's error ends the run at once, with no
// worker left behind, and cancelling the context does too.
func TestStreamStopsOnEmitError(t *testing.T) {
	dir := scratchProjects(t, 30)
	opts := Options{Paths: []string{dir}, Policy: policy.Env{HostMemory: 8 << 30}}
	boom := errors.New("disk full")
	done := make(chan error, 1)
	var emitted atomic.Int32
	go func() {
		done <- Stream(context.Background(), opts, nil, func(*Project) error {
			if emitted.Add(1) == 3 {
				return boom
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want emit's", err)
		}
	case <-time.After(testenv.Hang):
		t.Fatal("Stream hung after emit failed")
	}
	if n := emitted.Load(); n != 3 {
		t.Errorf("%d projects emitted, want 3", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	go func() {
		done <- Stream(ctx, opts, nil, func(*Project) error {
			once.Do(cancel)
			return nil
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(testenv.Hang):
		t.Fatal("Stream hung after its context was cancelled")
	}
}
