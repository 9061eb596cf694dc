package bufpool

import (
	"sync"
	"testing"
)

func TestGetPut(t *testing.T) {
	p := New(1500)
	b := p.Get()
	if len(b) != 1500 || cap(b) != 1500 {
		t.Fatalf("len %d cap %d", len(b), cap(b))
	}
	b[0] = 42
	p.Put(b[:10]) // a resliced buffer goes back whole
	c := p.Get()
	if len(c) != 1500 || &c[0] != &b[0] {
		t.Error("the buffer just put was not reused")
	}
	if p.Allocated() < 1 || p.Idle() != p.Allocated()-1 {
		t.Errorf("allocated %d idle %d", p.Allocated(), p.Idle())
	}
}

func TestBuffersDoNotOverlap(t *testing.T) {
	p := New(100)
	bufs := make([][]byte, 3*slabBytes/100)
	p.GetN(bufs)
	seen := map[*byte]bool{}
	for _, b := range bufs {
		if seen[&b[0]] {
			t.Fatal("buffer handed out twice")
		}
		seen[&b[0]] = true
		b = append(b, 1) // must reallocate, not spill into a neighbour
		_ = b
	}
	for i := range bufs {
		for j := range bufs[i] {
			bufs[i][j] = byte(i)
		}
	}
	for i, b := range bufs {
		for _, v := range b {
			if v != byte(i) {
				t.Fatalf("buffer %d overwritten", i)
			}
		}
	}
	p.PutN(bufs)
	if bufs[0] != nil {
		t.Error("PutN left references")
	}
}

func TestForeignIgnored(t *testing.T) {
	p := New(64)
	p.Put(make([]byte, 10))
	b := p.Get()
	p.Put(b[1:]) // offset: not its start, not kept
	if p.Idle() != p.Allocated()-1 {
		t.Errorf("foreign or offset slices kept: idle %d of %d", p.Idle(), p.Allocated())
	}
}

func TestZeroAllocs(t *testing.T) {
	p := New(2048)
	bufs := make([][]byte, 64)
	p.GetN(bufs)
	p.PutN(bufs)
	if a := testing.AllocsPerRun(1000, func() {
		b := p.Get()
		p.Put(b)
	}); a != 0 {
		t.Errorf("Get/Put: %v allocs", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		p.GetN(bufs)
		p.PutN(bufs)
	}); a != 0 {
		t.Errorf("GetN/PutN: %v allocs", a)
	}
}

func TestConcurrent(t *testing.T) {
	p := New(256)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				b := p.Get()
				for j := range b {
					b[j] = byte(g)
				}
				for j := range b {
					if b[j] != byte(g) {
						t.Errorf("buffer shared between goroutines")
						return
					}
				}
				if i%3 == 0 {
					continue // dropped by its user: the pool just makes more
				}
				p.Put(b)
			}
		}()
	}
	wg.Wait()
}

func TestNewPanicsOnZero(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(0) did not panic")
		}
	}()
	New(0)
}
