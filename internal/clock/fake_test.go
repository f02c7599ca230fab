package clock

import (
	"testing"
	"time"
)

func TestFakeFiresDueTimersOnly(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	created := c.Created()
	a, b := c.NewTimer(time.Second), c.NewTimer(time.Minute)
	if d := <-created; d != time.Second {
		t.Fatalf("created %v", d)
	}
	<-created
	c.Advance(time.Second)
	select {
	case <-a.C():
	default:
		t.Fatal("the one-second timer did not fire")
	}
	select {
	case <-b.C():
		t.Fatal("the one-minute timer fired early")
	default:
	}
	if !b.Stop() || b.Stop() || !c.Timer(1).Stopped() || len(c.Pending()) != 0 {
		t.Error("Stop reports pending once, and the timer leaves the pending list")
	}
	if !c.WaitPending(0, time.Second) || c.WaitPending(1, 10*time.Millisecond) {
		t.Error("WaitPending")
	}
	now := c.NewTimer(0)
	select {
	case <-now.C():
	default:
		t.Error("a zero timer fires at once")
	}
}
