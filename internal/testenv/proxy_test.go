package testenv_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
)

// startEcho runs a TCP echo server until the test ends and returns its address.
func startEcho(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		tb.Fatalf("dial proxy: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends a line and reports whether it came back within wait.
func roundTrip(tb testing.TB, c net.Conn, wait time.Duration) bool {
	tb.Helper()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		tb.Fatalf("set deadline: %v", err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "ping\n"
}

func TestProxyForwardsUntilCut(t *testing.T) {
	p := testenv.NewProxy(t, startEcho(t))
	c := dial(t, p.Addr())
	if !roundTrip(t, c, 2*time.Second) {
		t.Fatal("no echo through the proxy")
	}
	p.CutAll()
	if roundTrip(t, c, 2*time.Second) {
		t.Fatal("echo through a connection that was cut")
	}
	if !roundTrip(t, dial(t, p.Addr()), 2*time.Second) {
		t.Fatal("no echo on a new connection after CutAll")
	}
}

func TestProxyDownRefusesUntilUp(t *testing.T) {
	p := testenv.NewProxy(t, startEcho(t))
	open := dial(t, p.Addr())
	if !roundTrip(t, open, 2*time.Second) {
		t.Fatal("no echo through the proxy")
	}
	p.SetDown(true)
	if roundTrip(t, open, 2*time.Second) {
		t.Error("connection open before going down still works")
	}
	if roundTrip(t, dial(t, p.Addr()), 2*time.Second) {
		t.Error("new connection works while down")
	}
	p.SetDown(false)
	if !roundTrip(t, dial(t, p.Addr()), 2*time.Second) {
		t.Error("no echo after coming back up")
	}
}

func TestProxyStalledHoldsBytesUntilResumed(t *testing.T) {
	p := testenv.NewProxy(t, startEcho(t))
	c := dial(t, p.Addr())
	p.SetStalled(true)
	if roundTrip(t, c, 200*time.Millisecond) {
		t.Fatal("echo while stalled")
	}
	p.SetStalled(false)
	// The first ping was held, not lost: it arrives now.
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("after resuming read %q, %v; want the held ping", line, err)
	}
}

func TestRewriteURLPointsAtProxy(t *testing.T) {
	p := testenv.NewProxy(t, "127.0.0.1:5672")
	got := p.RewriteURL(t, "amqp://guest:guest@broker.example:5672/vhost?heartbeat=5")
	want := "amqp://guest:guest@" + p.Addr() + "/vhost?heartbeat=5"
	if got != want {
		t.Errorf("RewriteURL = %q, want %q", got, want)
	}
}
