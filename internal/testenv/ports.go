package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Ports handed to servers a test starts come from below the kernel's
// ephemeral range (32768–60999 by default): an outgoing connection of any
// process can take an ephemeral port between the moment FreeAddr closes its
// probe and the moment the server binds it, or while a killed node waits to
// restart on its old address. A port below that range is taken only by
// something that listens on it.
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portsMu   sync.Mutex
	portLocks = map[int]*os.File{}
)

// FreeAddr returns a loopback address whose port nothing listens on and no
// other test process of this machine holds, for a process that must be told
// its address before it starts (or restarts on the same one). The port stays
// reserved, through a lock file under the temporary directory, until the
// test binary exits, so parallel test packages never hand out the same one.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(os.TempDir(), "paytrade-ports")
	if err := os.MkdirAll(dir, 0o1777); err != nil {
		tb.Fatalf("port reservations: %v", err)
	}
	_ = os.Chmod(dir, 0o1777) // a plain user and root share it
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		if _, held := portLocks[port]; held {
			continue
		}
		f, ok := reservePort(dir, port)
		if !ok {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			f.Close()
			continue
		}
		ln.Close()
		portLocks[port] = f
		return addr
	}
	tb.Fatalf("no free loopback port between %d and %d after 200 tries", portLow, portHigh)
	return ""
}

// reservePort takes an exclusive, non-blocking lock on the port's file; the
// kernel drops it when the process ends, however it ends.
func reservePort(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.lock", port)), os.O_CREATE|os.O_RDONLY, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}
