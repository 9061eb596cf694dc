package dataplane

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeBind binds nothing; taken ports fail with EADDRINUSE wrapped the way
// the net package wraps it.
func fakeBind(taken map[int]bool) func(int) error {
	return func(p int) error {
		if taken[p] {
			return fmt.Errorf("listen: %w", os.NewSyscallError("bind", syscall.EADDRINUSE))
		}
		return nil
	}
}

func TestAllocatorLowestFirst(t *testing.T) {
	a := NewPortAllocator(50001, 50005)
	bind := fakeBind(map[int]bool{50002: true})
	for _, want := range []int{50001, 50003, 50004} {
		got, err := a.Acquire(bind)
		if err != nil || got != want {
			t.Fatalf("Acquire = %d, %v; want %d", got, err, want)
		}
	}
	a.Release(50001)
	if got, _ := a.Acquire(bind); got != 50001 {
		t.Errorf("after release got %d, want 50001", got)
	}
	if n := a.InUse(); n != 3 {
		t.Errorf("InUse = %d, want 3", n)
	}
	a.Release(1)     // outside: ignored
	a.Release(50005) // not held: ignored
}

func TestAllocatorExhausted(t *testing.T) {
	a := NewPortAllocator(40000, 40002)
	bind := fakeBind(map[int]bool{40001: true})
	for range 2 {
		if _, err := a.Acquire(bind); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Acquire(bind)
	if !errors.Is(err, ErrRangeExhausted) {
		t.Fatalf("err = %v, want ErrRangeExhausted", err)
	}
	for _, want := range []string{"40000-40002", "2 held by gw", "1 by other"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestAllocatorOtherBindError(t *testing.T) {
	a := NewPortAllocator(1, 10)
	calls := 0
	_, err := a.Acquire(func(int) error { calls++; return syscall.EADDRNOTAVAIL })
	if !errors.Is(err, syscall.EADDRNOTAVAIL) || calls != 1 {
		t.Errorf("err = %v after %d binds; want EADDRNOTAVAIL after 1", err, calls)
	}
	if a.InUse() != 0 {
		t.Error("a failed bind kept a port")
	}
}

func TestAllocatorConcurrent(t *testing.T) {
	a := NewPortAllocator(1000, 1099)
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				p, err := a.Acquire(func(int) error { return nil })
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[p] {
					t.Errorf("port %d handed out twice", p)
				}
				seen[p] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if _, err := a.Acquire(func(int) error { return nil }); !errors.Is(err, ErrRangeExhausted) {
		t.Errorf("101st Acquire: %v", err)
	}
}

var registerNoop sync.Once

func TestNewValidates(t *testing.T) {
	registerNoop.Do(func() { Register("test-noop", func(Config) (Dataplane, error) { return nil, nil }) })
	for _, c := range []Config{
		{PortMin: 1, PortMax: 2},
		{Addr: mustAddr("127.0.0.1"), PortMin: 0, PortMax: 2},
		{Addr: mustAddr("127.0.0.1"), PortMin: 3, PortMax: 2},
		{Addr: mustAddr("127.0.0.1"), PortMin: 1, PortMax: 70000},
		{Addr: mustAddr("127.0.0.1"), PortMin: 1, PortMax: 2, BufSize: -1},
	} {
		if _, err := New("test-noop", c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := New("nope", Config{}); err == nil {
		t.Error("unknown implementation accepted")
	}
}

func TestFeaturesString(t *testing.T) {
	if s := (FeatureGSO | FeatureGRO).String(); s != "gso,gro" {
		t.Errorf("got %q", s)
	}
	if s := Features(0).String(); s != "-" {
		t.Errorf("got %q", s)
	}
}
