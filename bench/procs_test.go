package main

import (
	"runtime"
	"testing"
	"time"
)

func TestCPUTicks(t *testing.T) {
	a := readCPUTicks()
	if a.total == 0 {
		if runtime.GOOS == "linux" {
			t.Fatal("no CPU time read from /proc/stat")
		}
		t.Skip("no /proc/stat")
	}
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	b := readCPUTicks()
	if b.total <= a.total || b.steal < a.steal || b.steal-a.steal > b.total-a.total {
		t.Fatalf("ticks went from %+v to %+v", a, b)
	}
	if s := stealShare(a, b); s < 0 || s > 1 {
		t.Errorf("steal share %v", s)
	}
	if s := stealShare(b, a); s != 0 {
		t.Errorf("steal share of a backward interval %v, want 0", s)
	}
}
