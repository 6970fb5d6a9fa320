package pace

import (
	"testing"
	"time"
)

func TestScheduleCatchesUpAndStops(t *testing.T) {
	s := Every(1000, 10) // a batch every 10ms
	defer s.Stop()
	if got := s.Interval(); got != 10*time.Millisecond {
		t.Fatalf("interval %v, want 10ms", got)
	}
	stop := make(chan struct{})
	time.Sleep(35 * time.Millisecond) // three batches late
	start := time.Now()
	for i := 0; i < 3; i++ {
		if !s.Wait(stop) {
			t.Fatal("Wait reported stop")
		}
	}
	if d := time.Since(start); d > 5*time.Millisecond {
		t.Logf("late batches took %v to come (expected back to back)", d)
	}
	close(stop)
	if s.Wait(stop) {
		t.Fatal("Wait after stop reported a batch")
	}
}
