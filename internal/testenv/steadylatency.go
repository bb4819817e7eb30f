package testenv

import (
	"syscall"
	"time"

	"github.com/Shopify/toxiproxy/v2/toxics"
)

// steadyLatency is toxiproxy's latency toxic with a delay that can be set
// to the microsecond. The stock toxic counts whole milliseconds and waits
// on a Go timer, and the runtime sleeps a timer shorter than a millisecond
// for a whole millisecond of epoll (runtime/netpoll_epoll.go rounds the
// wait up): it cannot be asked for 0.8 ms, and a reply that arrives in two
// pieces a fraction of a millisecond apart pays a millisecond for each,
// which no network does. This one waits in nanosleep(2) for the last
// stretch, which ends within the kernel's timer slack (50 µs), and on a
// timer before that: a goroutine that wakes from a timer is run at once,
// one that comes back from a long system call queues for a P, and with
// the whole wait in nanosleep a 5 ms link slowed the services behind it
// nearly fourfold at 32 clients. What a round trip through the proxy gains is the
// delay plus the proxy's own hops; a caller that needs it exact measures
// and sets the delay (SetLatency).
type steadyLatency struct {
	// Latency is in microseconds.
	Latency int64 `json:"latency"`
}

const steadyLatencyType = "steady_latency"

// nanosleepAtMost is the longest wait left to nanosleep: a timer set to
// end that far before the due time ends before it, a millisecond late at
// worst, unless the machine is starved.
const nanosleepAtMost = 1500 * time.Microsecond

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
			due := c.Timestamp.Add(latency)
			// The bulk of a long wait on a Go timer, whose goroutine wakes
			// on a P like any other; only the last stretch in nanosleep.
			if wait := time.Until(due) - nanosleepAtMost; wait > 0 {
				time.Sleep(wait)
			}
			if wait := time.Until(due); wait > 0 {
				// A signal (the runtime's own, to preempt or to profile)
				// ends the call early with what is left of the wait in ts.
				ts := syscall.NsecToTimespec(wait.Nanoseconds())
				for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
				}
			}
			c.Timestamp = due
			select {
			case stub.Output <- c:
			case <-stub.Interrupt:
				stub.Output <- c
				return
			}
		}
	}
}
