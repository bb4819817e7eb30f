package testenv

import (
	"syscall"
	"time"

	"github.com/Shopify/toxiproxy/v2/toxics"
)

// steadyLatency is toxiproxy's latency toxic with a wait that lands on
// time. The stock toxic waits on a Go timer, and a Go timer shorter than a
// millisecond sleeps a whole millisecond of epoll (runtime/netpoll_epoll.go
// rounds the wait up), plus the wake-up: asked for 1 ms per round trip, it
// added 1.19–1.28 ms here. This one sleeps in nanosleep(2), which the
// kernel ends within its timer slack (50 µs), so "1 ms per round trip"
// means what it says. The sleeping goroutine holds a thread, not a P: the
// runtime hands the P on while the call blocks.
type steadyLatency struct {
	// Latency is in microseconds.
	Latency int64 `json:"latency"`
}

const steadyLatencyType = "steady_latency"

func init() { toxics.Register(steadyLatencyType, new(steadyLatency)) }

func (t *steadyLatency) GetBufferSize() int { return 1024 }

// Pipe delays every chunk until Latency after it was read, and passes it on
// in order; an interrupt lets the chunk in hand through at once, as the
// stock toxic does, so that nothing is dropped.
func (t *steadyLatency) Pipe(stub *toxics.ToxicStub) {
	latency := time.Duration(t.Latency) * time.Microsecond
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if wait := latency - time.Since(c.Timestamp); wait > 0 {
				// A signal (the runtime's own, to preempt or to profile)
				// ends the call early with what is left of the wait in ts.
				ts := syscall.NsecToTimespec(wait.Nanoseconds())
				for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
				}
			}
			c.Timestamp = c.Timestamp.Add(latency)
			select {
			case stub.Output <- c:
			case <-stub.Interrupt:
				stub.Output <- c
				return
			}
		}
	}
}
