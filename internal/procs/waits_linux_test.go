package procs

import (
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
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
	var burning atomic.Bool
	burning.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for burning.Load() {
		}
	}()
	// Listed once the burning thread runs.
	time.Sleep(100 * time.Millisecond)
	var w waits
	defer w.close()
	w.since()
	time.Sleep(time.Second)
	waited := w.since()
	burning.Store(false)
	<-done
	// Sharing a CPU with a hog, the burning thread waits about half the
	// time.
	if waited < 100*time.Millisecond {
		t.Fatalf("a thread crowded for 1 s waited %v to run", waited)
	}
}

// The main goroutine keeps the main thread, so no test goroutine runs
// there: one that returns locked to its thread then ends that thread (the
// runtime never ends the main one).
func init() { runtime.LockOSThread() }

// A thread that ends leaves the sum, and its file is closed.
func TestWaitsForgetEndedThreads(t *testing.T) {
	var w waits
	defer w.close()
	tids := make(chan int)
	release := make(chan struct{})
	go func() {
		// Returning locked ends the thread.
		runtime.LockOSThread()
		tids <- syscall.Gettid()
		<-release
	}()
	tid := strconv.Itoa(<-tids)
	w.since()
	if w.threads[tid] == nil {
		t.Fatalf("thread %s not among %d listed", tid, len(w.threads))
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for w.since(); w.threads[tid] != nil; w.since() {
		if time.Now().After(deadline) {
			t.Fatalf("thread %s still listed 5 s after it ended", tid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
