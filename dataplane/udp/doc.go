// Package udp holds gw's dataplane implementations over local UDP sockets.
// Importing it (for its side effect) registers them with package dataplane:
//
//	import _ "github.com/gw-project/gw/dataplane/udp"
//
// # Implementations
//
// "std" is portable: a net.UDPConn read one datagram at a time
// (ReadMsgUDPAddrPort), each handed to the sink as a batch of one, and
// written one at a time (WriteToUDPAddrPort). It is the baseline, and
// ignores Config.Linger.
//
// "mmsg" (Linux) reads with recvmmsg and writes with sendmmsg, issued
// directly (unix.RawSyscall6 over preallocated unix.Mmsghdr, iovec, sockaddr
// and control arrays) inside syscall.RawConn Read/Write callbacks, so that
// the Go netpoller parks the worker when the socket is empty and Close wakes
// it, and nothing allocates per packet (x/net's ReadBatch allocates a source
// address per datagram). The calls cannot block (MSG_DONTWAIT: a full or
// empty socket answers EAGAIN, and the netpoller waits), so they go in as
// raw system calls: the goroutine keeps its P. Through the runtime's
// syscall entry instead, a sendmmsg that takes tens of microseconds (a GSO
// batch that loopback delivers in the same call) gets its P handed to
// another thread by sysmon, and the thread wake-ups that follow cost more
// than the call. On top of that, where the kernel has them:
//
//   - UDP GSO on send: consecutive datagrams of Send of equal size (the last
//     may be shorter) go out as one message with a UDP_SEGMENT control
//     message, up to 64 datagrams / 64 KiB; the kernel splits them. This is
//     where batching pays (sendmmsg alone saves little). If the kernel
//     answers EIO or EINVAL to a GSO message, GSO is switched off for that
//     socket and the datagrams are sent again without it.
//   - UDP GRO on receive: the kernel may queue several datagrams of one
//     sender as one buffer with a UDP_GRO control message giving their size;
//     the worker splits it into packets for the sink. See "GRO buffers".
//   - SO_RXQ_OVFL: the kernel's count of datagrams it dropped because the
//     receive queue was full rides along with received datagrams, and
//     SO_MEMINFO is read on Stats; both give Stats.Drops[DropOverflow].
//
// A setsockopt the kernel refuses just leaves the feature off; Stats.Features
// says what a port uses.
//
// # Workers
//
// Each port has one receive worker goroutine. The sink runs on it, so a
// batch goes from the kernel to the sink with no goroutine hand-off. When
// Config.CPUs is set, the worker is locked to its OS thread
// (runtime.LockOSThread) and that thread pinned to one of those CPUs,
// round-robin (sched_setaffinity); a pinned worker exits still locked, so
// the runtime retires its thread instead of reusing a thread with a
// narrowed CPU mask. Otherwise the worker is locked only while it calls the
// sink (so that Close can tell a call from the sink by its thread id),
// because a locked goroutine that parks in the netpoller costs two thread
// switches per wake-up (the netpoller's thread hands its P to the locked
// one): with evenly spaced packets, the profile of the app-facing gw put
// close to half its cycles there.
//
// # Linger
//
// Evenly spaced datagrams give a worker nothing to batch: each finds it
// parked and costs a thread wake-up, which on a VM outweighs the packet's
// own work. With Config.Linger set, an "mmsg" port of a busy plane (over
// Config.LingerRate packets/s in all) whose worker wakes up over 200 times
// a second stops waiting for datagrams: its worker sleeps until the next
// tick, a multiple of Linger since the plane was made, so that the timers
// of all such ports fire together and one wake-up serves them; it then
// reads whatever arrived without waiting and hands it on as one batch (and
// its sink sends it on as one). A read that fills the batch is followed by
// another at once. Datagrams in runs (a camera's frames) wake a waiting
// worker once a run or so, and would leave most ticks empty: a polling
// port goes back to waiting when fewer than 15% of its polls find
// anything, and every port does below 3/4 of the plane's rate.
//
// A socket registered with the netpoller wakes the netpoller's thread on
// every datagram, whether or not a goroutine waits on it, which would undo
// the saving. So an "mmsg" port moves its socket off the net.UDPConn it was
// bound with to a plain descriptor the netpoller does not know, and its
// worker waits on a registered duplicate of it, closed while polling.
//
// ICENet's sockets linger the same way, apart (their own rate, the same
// ticks): on Linux each is a plain descriptor too, and pion's reader of a
// busy one sleeps to the tick after a read that found nothing. So the
// receiving gw reads a connection's paced SRTP on the tick, and the
// goroutines pion hands each packet to run on that one wake-up.
//
// # GRO buffers
//
// A coalesced buffer can be up to 64 KiB, and the kernel truncates (loses)
// whatever does not fit the receive buffer, so with GRO every receive slot
// must take 64 KiB. Giving each of the BatchSize slots a 64 KiB pool buffer
// would cost 4 MiB of resident memory per port for traffic that, from local
// apps on the loopback interface, is almost never coalesced (loopback does no
// GRO; only senders that use GSO themselves produce such buffers). So each
// slot reads into two iovecs: its ordinary pool buffer (Config.BufSize)
// first, then a 64 KiB spill area of an anonymous mmap reserved per port. A
// normal datagram lands in the pool buffer and is handed on in place; only a
// coalesced one spills, and then the pool buffer's part is copied just in
// front of the spill area (one copy of at most BufSize bytes per up to 64
// datagrams) so the datagrams lie contiguous. The mapping is address space,
// not memory: pages become resident only when something spills into them. A
// datagram that is not coalesced and does not fit BufSize is dropped as
// truncated, as with GRO off.
//
// # Close
//
// Port.Close closes the socket (and the worker's registered duplicate, which
// wakes it out of the netpoller; a polling worker finds the socket closed
// within a tick), waits for the worker to return (so the sink is never
// called after Close returns), returns the worker's buffers to the pool and
// frees the port number. A sink may call Close of its own port (on Linux): Close then does
// not wait for itself; the worker stops after the sink returns.
//
// # Counters
//
// Counters are atomics updated once per receive batch or Send call, not per
// datagram; receive and send counters sit on separate cache lines so that a
// worker and a sender do not contend.
package udp
