package parallel

import (
	"context"
	"sync/atomic"
	"testing"
)

func TestForEachCallsEveryItemOnce(t *testing.T) {
	for _, workers := range []int{0, 1, 3, 100} {
		seen := make([]atomic.Int32, 50)
		ForEach(context.Background(), len(seen), workers, func(i int) { seen[i].Add(1) })
		for i := range seen {
			if n := seen[i].Load(); n != 1 {
				t.Fatalf("workers=%d: item %d called %d times", workers, i, n)
			}
		}
	}
	ForEach(context.Background(), 0, 4, func(int) { t.Fatal("called for n=0") })
}

func TestForEachStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	ForEach(ctx, 1000, 1, func(int) {
		if calls.Add(1) == 3 {
			cancel()
		}
	})
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls after cancel at the third, want 3", n)
	}
}
