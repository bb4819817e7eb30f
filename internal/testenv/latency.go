package testenv

import (
	"syscall"
	"time"
)

// nanosleepAtMost is the longest wait sleepUntil leaves to nanosleep: a
// timer set to end that far before the due time ends before it, a
// millisecond late at worst, unless the machine is starved.
const nanosleepAtMost = 1500 * time.Microsecond

// sleepUntil returns at due, to within the kernel's timer slack (50 µs).
// A Go timer alone cannot: the runtime sleeps a timer shorter than a
// millisecond for a whole millisecond of epoll (runtime/netpoll_epoll.go
// rounds the wait up), so a link asked for 0.8 ms would add 1, and a reply
// that arrives in two pieces a fraction of a millisecond apart would pay a
// millisecond for each, which no network does. So the last stretch is
// slept in nanosleep(2), and only the last: a goroutine that wakes from a
// timer is run at once, one that comes back from a long system call
// queues for a P, and with the whole wait in nanosleep a 5 ms link slowed
// the services behind it nearly fourfold at 32 clients.
func sleepUntil(due time.Time) {
	if wait := time.Until(due) - nanosleepAtMost; wait > 0 {
		time.Sleep(wait)
	}
	if wait := time.Until(due); wait > 0 {
		// A signal (the runtime's own, to preempt or to profile) ends the
		// call early with what is left of the wait in ts.
		ts := syscall.NsecToTimespec(wait.Nanoseconds())
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
	}
}
