package procs

import (
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// A thread that other programs crowd out of the CPUs waits to run, and
// runWaits sees it.
func TestRunWaitsSeesCrowding(t *testing.T) {
	for range runtime.NumCPU() {
		hog := exec.Command("sh", "-c", "while :; do :; done")
		if err := hog.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			hog.Process.Kill()
			hog.Wait()
		}()
	}
	before := runWaits()
	var burning atomic.Bool
	burning.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for burning.Load() {
		}
	}()
	time.Sleep(time.Second)
	burning.Store(false)
	<-done
	// Sharing a CPU with a hog, the burning thread waits about half the
	// time.
	if waited := runWaits() - before; waited < 100*time.Millisecond {
		t.Fatalf("a thread crowded for 1 s waited %v to run", waited)
	}
}
