package procs

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// relist: every this many samples the thread list is read again; Go
// starts threads rarely once running.
const relist = 20

// waits adds up how long the process's threads waited on a run queue
// (run_delay, the second field of each thread's schedstat). Each thread's
// file stays open: reading it again costs a sixth of opening it.
type waits struct {
	threads map[string]*thread // by thread id
	n       int
	buf     [128]byte
}

type thread struct {
	f    *os.File
	last time.Duration // run_delay at the last sample
	seen bool
}

// since is how long the threads waited since the last call. A thread's
// first reading only sets where it starts from, and one that ended adds
// nothing more.
func (w *waits) since() time.Duration {
	if w.n%relist == 0 {
		w.list()
	}
	w.n++
	var d time.Duration
	for tid, th := range w.threads {
		v, ok := w.read(th.f)
		if !ok { // the thread ended
			th.f.Close()
			delete(w.threads, tid)
			continue
		}
		if th.seen {
			d += v - th.last
		}
		th.last, th.seen = v, true
	}
	return d
}

func (w *waits) read(f *os.File) (time.Duration, bool) {
	n, err := f.ReadAt(w.buf[:], 0)
	if n == 0 && err != nil {
		return 0, false
	}
	fields := bytes.Fields(w.buf[:n])
	if len(fields) < 2 {
		return 0, false
	}
	ns, err := strconv.ParseInt(string(fields[1]), 10, 64)
	return time.Duration(ns), err == nil
}

// list opens the files of threads started since the last list.
func (w *waits) list() {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	if w.threads == nil {
		w.threads = make(map[string]*thread, len(tasks))
	}
	for _, t := range tasks {
		if _, ok := w.threads[t.Name()]; ok {
			continue
		}
		if f, err := os.Open("/proc/self/task/" + t.Name() + "/schedstat"); err == nil {
			w.threads[t.Name()] = &thread{f: f}
		}
	}
}

func (w *waits) close() {
	for _, th := range w.threads {
		th.f.Close()
	}
	w.threads = nil
}
