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

// waits sums the time the process's threads have waited on a run queue
// (run_delay, the second field of each thread's schedstat). Each thread's
// file stays open: reading it again costs a sixth of opening it.
type waits struct {
	files map[string]*os.File // by thread id
	n     int
	buf   [128]byte
}

func (w *waits) total() time.Duration {
	if w.n%relist == 0 {
		w.list()
	}
	w.n++
	var total time.Duration
	for tid, f := range w.files {
		n, err := f.ReadAt(w.buf[:], 0)
		if n == 0 && err != nil { // the thread ended
			f.Close()
			delete(w.files, tid)
			continue
		}
		fields := bytes.Fields(w.buf[:n])
		if len(fields) < 2 {
			continue
		}
		if ns, err := strconv.ParseInt(string(fields[1]), 10, 64); err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}

// list opens the files of threads started since the last list.
func (w *waits) list() {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	if w.files == nil {
		w.files = make(map[string]*os.File, len(tasks))
	}
	for _, t := range tasks {
		if _, ok := w.files[t.Name()]; ok {
			continue
		}
		if f, err := os.Open("/proc/self/task/" + t.Name() + "/schedstat"); err == nil {
			w.files[t.Name()] = f
		}
	}
}

func (w *waits) close() {
	for _, f := range w.files {
		f.Close()
	}
	w.files = nil
}
