package clock

import (
	"sync"
	"time"
)

// Fake is a clock for tests: time moves only when Advance says so, and a
// test can see which timers the code under test made and is waiting on.
type Fake struct {
	mu      sync.Mutex
	cond    *sync.Cond
	now     time.Time
	all     []*FakeTimer // every timer, in creation order
	pending []*FakeTimer // timers neither fired nor stopped
	created chan time.Duration
}

// FakeTimer is a timer of a Fake clock.
type FakeTimer struct {
	c       *Fake
	d       time.Duration
	when    time.Time
	ch      chan time.Time
	stopped bool
	fired   bool
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake {
	c := &Fake{now: start}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Created returns a channel that receives the duration of every timer made
// from now on. Once asked for, it must be drained: a timer's creation waits
// until its duration is taken when the buffer is full.
func (c *Fake) Created() <-chan time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.created == nil {
		c.created = make(chan time.Duration, 128)
	}
	return c.created
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer makes a timer that fires when Advance reaches its time; a
// non-positive duration fires at once, as time.NewTimer does.
func (c *Fake) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	t := &FakeTimer{c: c, d: d, when: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.all = append(c.all, t)
	if d <= 0 {
		t.fired = true
		t.ch <- c.now
	} else {
		c.pending = append(c.pending, t)
	}
	created := c.created
	c.cond.Broadcast()
	c.mu.Unlock()
	if created != nil {
		created <- d
	}
	return t
}

// Advance moves time on and fires every timer that became due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.pending[:0]
	for _, t := range c.pending {
		if t.when.After(c.now) {
			keep = append(keep, t)
			continue
		}
		t.fired = true
		t.ch <- c.now
	}
	c.pending = keep
}

// Timer returns the i-th timer made (0 is the first).
func (c *Fake) Timer(i int) *FakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all[i]
}

// Pending lists the timers neither fired nor stopped.
func (c *Fake) Pending() []*FakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*FakeTimer(nil), c.pending...)
}

// WaitPending blocks until at least n timers are pending (the code under
// test is waiting on the clock) or timeout passes, and reports which.
func (c *Fake) WaitPending(n int, timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		c.mu.Lock()
		for len(c.pending) < n {
			c.cond.Wait()
		}
		c.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// C is the channel the timer fires on.
func (t *FakeTimer) C() <-chan time.Time { return t.ch }

// Stop stops the timer; it reports whether the timer was still pending.
func (t *FakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.stopped = true
	for i, x := range t.c.pending {
		if x == t {
			t.c.pending = append(t.c.pending[:i], t.c.pending[i+1:]...)
			return true
		}
	}
	return false
}

// Stopped reports whether Stop was called.
func (t *FakeTimer) Stopped() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.stopped
}

// Duration is what the timer was made with.
func (t *FakeTimer) Duration() time.Duration { return t.d }
