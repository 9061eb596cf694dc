// Package rtpstats measures a received RTP stream as RFC 3550 defines it:
// interarrival jitter (appendix A.8) and packets lost and fraction lost
// (appendices A.1 and A.3), including sequence number wrap-around,
// reordering, duplicates and restarts.
//
// gw uses it where nothing of pion looks: on the RTP an app sends to a
// dataplane port, and on what arrives from a remote (pion's own inbound
// jitter takes a second difference of the delay and reads too high).
//
// # Concurrency
//
// A Receiver belongs to the one goroutine that sees the stream's packets
// (a dataplane sink, a track read loop): only it calls Update and Publish.
// Update costs a few arithmetic operations and never allocates; it publishes
// a Snapshot at most once per Interval of packet arrival time (no timer, no
// goroutine), into atomics that Snapshot reads from any goroutine, at scrape
// time. The published figures therefore lag by up to one Interval, and stop
// changing when packets stop arriving.
package rtpstats

import (
	"math"
	"runtime"
	"sync/atomic"
	"time"
)

// RFC 3550 A.1 constants.
const (
	seqMod        = 1 << 16
	maxDropout    = 3000 // a forward jump of up to this many is a gap, not a restart
	maxMisorder   = 100  // a backward step of up to this many is a late packet
	minSequential = 2    // in-order packets needed before a source is valid
)

// DefaultInterval is how often a Receiver publishes, in arrival time.
const DefaultInterval = time.Second

// dupWindow is how many recent sequence numbers duplicate detection
// remembers (a bit each).
const dupWindow = 1024

// Config sets up a Receiver.
type Config struct {
	// ClockRate of the RTP timestamps in Hz (90000 for video, 48000 for
	// Opus). 0 leaves jitter at 0.
	ClockRate uint32
	// Interval between publications, in packet arrival time; 0 means
	// DefaultInterval. It is also the interval fraction lost covers.
	Interval time.Duration
}

// Snapshot is what a Receiver last published. W3C webrtc-stats names (of
// RTCInboundRtpStreamStats) are given where one exists.
type Snapshot struct {
	// Packets and Bytes count every datagram given to Update (duplicates,
	// late ones and those of an unvalidated source included); Bytes is the
	// size passed to Update.
	Packets, Bytes uint64
	// Valid: the source passed probation (RFC 3550 A.1: two packets in
	// sequence); the loss figures are 0 until then.
	Valid bool
	// ExtHighestSeq is the extended highest sequence number received:
	// wrap-arounds (cycles) in the high 16 bits, as an RR carries it.
	ExtHighestSeq uint32
	// Expected is ExtHighestSeq - base + 1 (A.3).
	Expected uint64
	// Received counts packets since validation, late and duplicated ones
	// included, as A.1 does (packetsReceived counts them too).
	Received uint64
	// Lost = Expected - Received (packetsLost); negative when duplicates
	// outnumber losses, as RFC 3550 6.4.1 allows.
	Lost int64
	// FractionLost over the last interval, 0..1, in steps of 1/256 as an RR
	// carries it (RTCRemoteInboundRtpStreamStats.fractionLost is the
	// remote's; this is gw's own).
	FractionLost float64
	// Jitter is the interarrival jitter in seconds (jitter).
	Jitter float64
	// Duplicates counts packets whose sequence number was seen within the
	// last 1024 (packetsDuplicated, provisional in webrtc-stats).
	Duplicates uint64
	// Reordered counts packets that arrived after a higher sequence number
	// and were not duplicates.
	Reordered uint64
	// At is the arrival time of the packet that triggered the publication
	// (zero before the first).
	At time.Time
}

// Receiver measures one RTP stream (one SSRC). The zero value is not usable;
// use New.
type Receiver struct {
	// Owned by the packet goroutine.
	rate     float64
	interval time.Duration
	started  bool
	resync   bool      // Restart was called: the next packet starts a new source
	epoch    time.Time // first packet's arrival; times are kept relative to it
	nextPub  time.Duration
	lastAt   time.Duration
	// Packets and bytes so far, for Counts: atomic, unlike the rest.
	packets, bytes atomic.Uint64

	// A.1 state.
	probation     int
	maxSeq        uint16
	cycles        uint32 // shifted count of wrap-arounds, as in A.1
	baseSeq       uint32
	badSeq        uint32
	received      uint64
	expectedPrior uint64
	receivedPrior uint64
	fraction      float64

	// A.8 state.
	haveTransit bool
	lastArrival time.Duration
	lastTS      uint32
	jitter      float64 // in timestamp units

	// Duplicate detection: seen[i] bit b marks extended sequence number
	// 64*i+b (mod dupWindow) within dupWindow of the highest.
	seen       [dupWindow / 64]uint64
	duplicates uint64
	reordered  uint64

	pub published
}

// New returns a Receiver for a stream of the given clock rate.
func New(c Config) *Receiver {
	r := &Receiver{rate: float64(c.ClockRate), interval: c.Interval}
	if r.interval <= 0 {
		r.interval = DefaultInterval
	}
	return r
}

// Update accounts one received RTP packet: its sequence number, timestamp,
// size in bytes and arrival time (with a monotonic reading, as time.Now
// gives). Packets must be given in arrival order. It reports whether it
// published a new Snapshot, which happens on the first packet and then at
// most once per Interval: the moment for once-a-second work such as
// metrics.MediaObserver.Observe. It never allocates.
func (r *Receiver) Update(seq uint16, ts uint32, size int, arrival time.Time) (published bool) {
	if !r.started {
		r.started = true
		r.epoch = arrival
		r.resync = true
	}
	if r.resync {
		// A.1: "on the first packet of a new source".
		r.resync = false
		r.initSeq(seq)
		r.maxSeq = seq - 1
		r.probation = minSequential
		r.haveTransit = false
		r.jitter = 0
		r.fraction = 0
	}
	at := arrival.Sub(r.epoch)
	r.lastAt = at
	r.packets.Add(1)
	r.bytes.Add(uint64(max(size, 0)))
	r.updateJitter(ts, at)
	r.updateSeq(seq)
	if at >= r.nextPub {
		r.publish()
		return true
	}
	return false
}

// Restart makes the next packet the first of a new source, as when the
// sender's SSRC changes on a port that carries one stream at a time:
// sequence tracking goes through probation again, and the loss figures
// (Expected, Received, Lost, FractionLost) and jitter start over. Packets,
// Bytes, Duplicates and Reordered keep counting, and the publication
// schedule stays as it was. Only the packet goroutine may call it; it does
// not allocate.
func (r *Receiver) Restart() {
	if r.started {
		r.resync = true
	}
}

// Publish publishes a Snapshot now, whatever the interval (at the end of a
// stream, or in tests). Only the packet goroutine may call it.
func (r *Receiver) Publish() {
	if r.started {
		r.publish()
	}
}

// updateJitter is A.8: D(i-1,i) = (R_i - R_{i-1}) - (S_i - S_{i-1}) in
// timestamp units, J += (|D| - J)/16. The arrival difference is converted
// from nanoseconds rather than kept as a truncated integer clock, and the
// timestamp difference is taken modulo 2^32, so wrap-around needs nothing
// special.
func (r *Receiver) updateJitter(ts uint32, at time.Duration) {
	if r.rate == 0 {
		return
	}
	if r.haveTransit {
		d := float64(at-r.lastArrival)*r.rate/1e9 - float64(int32(ts-r.lastTS))
		r.jitter += (math.Abs(d) - r.jitter) / 16
	}
	r.haveTransit = true
	r.lastArrival, r.lastTS = at, ts
}

// initSeq is A.1's init_seq.
func (r *Receiver) initSeq(seq uint16) {
	r.baseSeq = uint32(seq)
	r.maxSeq = seq
	r.badSeq = seqMod + 1 // so seq == badSeq is false
	r.cycles = 0
	r.received = 0
	r.receivedPrior = 0
	r.expectedPrior = 0
	r.seen = [len(r.seen)]uint64{}
	r.markSeen(uint32(seq))
}

// updateSeq is A.1's update_seq, plus duplicate and reorder counting.
func (r *Receiver) updateSeq(seq uint16) {
	udelta := seq - r.maxSeq
	switch {
	case r.probation > 0:
		if seq == r.maxSeq+1 {
			r.probation--
			r.maxSeq = seq
			if r.probation == 0 {
				r.initSeq(seq)
				r.received++
			}
			return
		}
		r.probation = minSequential - 1
		r.maxSeq = seq
		return
	case udelta < maxDropout:
		// In order, with a permissible gap.
		r.advance(udelta)
		if seq < r.maxSeq {
			r.cycles += seqMod // wrapped: another 64K cycle
		}
		r.maxSeq = seq
	case udelta <= seqMod-maxMisorder:
		// A very large jump: two sequential packets mean the sender
		// restarted, so re-sync as if this were the first packet.
		if uint32(seq) != r.badSeq {
			r.badSeq = (uint32(seq) + 1) & (seqMod - 1)
			return
		}
		r.initSeq(seq)
	default:
		// Duplicate or late.
		back := uint32(r.maxSeq - seq)
		if back < dupWindow {
			ext := r.extMax() - back
			if r.isSeen(ext) {
				r.duplicates++
			} else {
				r.markSeen(ext)
				r.reordered++
			}
		} else {
			r.reordered++
		}
	}
	r.received++
}

func (r *Receiver) extMax() uint32 { return r.cycles + uint32(r.maxSeq) }

// advance moves the duplicate window forward by n sequence numbers and
// marks the new highest one (n == 0: the highest arrived again).
func (r *Receiver) advance(n uint16) {
	ext := r.extMax()
	if n == 0 {
		r.duplicates++
		return
	}
	if n >= dupWindow {
		r.seen = [len(r.seen)]uint64{}
	} else {
		for i := uint32(1); i < uint32(n); i++ {
			r.clearSeen(ext + i)
		}
	}
	r.markSeen(ext + uint32(n))
}

func (r *Receiver) markSeen(ext uint32) {
	i := ext % dupWindow
	r.seen[i/64] |= 1 << (i % 64)
}

func (r *Receiver) clearSeen(ext uint32) {
	i := ext % dupWindow
	r.seen[i/64] &^= 1 << (i % 64)
}

func (r *Receiver) isSeen(ext uint32) bool {
	i := ext % dupWindow
	return r.seen[i/64]&(1<<(i%64)) != 0
}

// publish computes A.3's interval figures and stores the snapshot.
func (r *Receiver) publish() {
	r.nextPub = r.lastAt + r.interval
	valid := r.probation == 0
	var extMax uint32
	var expected uint64
	var lost int64
	if valid {
		extMax = r.extMax()
		expected = uint64(extMax) - uint64(r.baseSeq) + 1
		lost = int64(expected) - int64(r.received)
		expInt := expected - r.expectedPrior
		recInt := r.received - r.receivedPrior
		r.expectedPrior, r.receivedPrior = expected, r.received
		lostInt := int64(expInt) - int64(recInt)
		if expInt == 0 || lostInt <= 0 {
			r.fraction = 0
		} else {
			r.fraction = float64((lostInt<<8)/int64(expInt)) / 256
		}
	}
	p := &r.pub
	p.seq.Add(1) // odd: writing
	p.v[fPackets].Store(r.packets.Load())
	p.v[fBytes].Store(r.bytes.Load())
	p.v[fValid].Store(b2u(valid))
	p.v[fExtMax].Store(uint64(extMax))
	p.v[fExpected].Store(expected)
	p.v[fReceived].Store(r.received)
	p.v[fLost].Store(uint64(lost))
	p.v[fFraction].Store(math.Float64bits(r.fraction))
	p.v[fJitter].Store(math.Float64bits(r.jitterSeconds()))
	p.v[fDuplicates].Store(r.duplicates)
	p.v[fReordered].Store(r.reordered)
	p.v[fAt].Store(uint64(r.lastAt))
	p.epoch.Store(&r.epoch)
	p.seq.Add(1) // even: done
}

func (r *Receiver) jitterSeconds() float64 {
	if r.rate == 0 {
		return 0
	}
	return r.jitter / r.rate
}

// Counts returns Packets and Bytes as they are now, not as last published.
// Safe for concurrent use with Update.
func (r *Receiver) Counts() (packets, bytes uint64) {
	return r.packets.Load(), r.bytes.Load()
}

// Snapshot returns the last published figures (the zero Snapshot before the
// first packet). Safe for concurrent use with Update.
func (r *Receiver) Snapshot() Snapshot {
	p := &r.pub
	for {
		s1 := p.seq.Load()
		if s1&1 != 0 {
			runtime.Gosched()
			continue
		}
		var v [numFields]uint64
		for i := range v {
			v[i] = p.v[i].Load()
		}
		epoch := p.epoch.Load()
		if p.seq.Load() != s1 {
			continue
		}
		var s Snapshot
		s.Packets, s.Bytes = v[fPackets], v[fBytes]
		s.Valid = v[fValid] != 0
		s.ExtHighestSeq = uint32(v[fExtMax])
		s.Expected, s.Received = v[fExpected], v[fReceived]
		s.Lost = int64(v[fLost])
		s.FractionLost = math.Float64frombits(v[fFraction])
		s.Jitter = math.Float64frombits(v[fJitter])
		s.Duplicates, s.Reordered = v[fDuplicates], v[fReordered]
		if epoch != nil {
			s.At = epoch.Add(time.Duration(v[fAt]))
		}
		return s
	}
}

// published is a sequence lock over the snapshot's fields: the writer makes
// seq odd while it stores, a reader retries until it read an even seq that
// did not change. Every field is an atomic, so readers never race.
type published struct {
	seq   atomic.Uint64
	v     [numFields]atomic.Uint64
	epoch atomic.Pointer[time.Time] // set once; points into the Receiver
}

const (
	fPackets = iota
	fBytes
	fValid
	fExtMax
	fExpected
	fReceived
	fLost
	fFraction
	fJitter
	fDuplicates
	fReordered
	fAt
	numFields
)

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
