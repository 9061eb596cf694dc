//go:build !linux

package rtpload

import (
	"errors"
	"net/netip"
)

var errUnsupported = errors.New("rtpload: Linux only")

// Sender is Linux only.
type Sender struct{ Frames float64 }

// NewSender fails off Linux.
func NewSender([]netip.AddrPort, int, uint8) (*Sender, error) { return nil, errUnsupported }

func (s *Sender) Streams() int                       { return 0 }
func (s *Sender) Next(int) uint64                    { return 0 }
func (s *Sender) Sent() uint64                       { return 0 }
func (s *Sender) Behind() uint64                     { return 0 }
func (s *Sender) Close() error                       { return nil }
func (s *Sender) Run(float64, <-chan struct{}) error { return errUnsupported }

// Sink is Linux only.
type Sink struct{ Latency, AppLatency Histogram }

// NewSink fails off Linux.
func NewSink(int) (*Sink, error) { return nil, errUnsupported }

func (k *Sink) Addr() netip.AddrPort  { return netip.AddrPort{} }
func (k *Sink) SetFloor(int, uint64)  {}
func (k *Sink) Received(int) uint64   { return 0 }
func (k *Sink) Duplicates(int) uint64 { return 0 }
func (k *Sink) Foreign() uint64       { return 0 }
func (k *Sink) Record(bool)           {}
func (k *Sink) Run() error            { return errUnsupported }
func (k *Sink) Close() error          { return nil }
