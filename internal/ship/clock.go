package ship

import (
	"time"

	"github.com/hy-home/hyhome/internal/clock"
)

// Clock is the time source of the agent's components. Tests pass a fake so
// that batching waits, retry backoff and checkpoint intervals never sleep
// on the wall clock.
type Clock = clock.Clock

// Timer is the part of *time.Timer the components use.
type Timer = clock.Timer

// sleep waits d on clock, or until done is closed; it reports whether the
// full wait elapsed.
func sleep(clock Clock, d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-done:
		return false
	}
}
