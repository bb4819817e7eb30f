package httpserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
)

func TestDebugListenerServesProfilesOnlyWhenAskedTo(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := ServeDebug(ctx, "", log); err != nil {
		t.Fatalf("ServeDebug with no address: %v, want nil (nothing served)", err)
	}

	addr := testenv.FreeAddr(t)
	if err := ServeDebug(ctx, addr, log); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %d %.200s, want the pprof index", res.StatusCode, body)
	}

	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := client.Get("http://" + addr + "/debug/pprof/"); err != nil {
			return // closed with its context
		}
		if time.Now().After(deadline) {
			t.Fatal("the debug listener still answers after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoopbackKeepsADevelopmentServiceOffEveryOtherInterface(t *testing.T) {
	tests := []struct {
		addr, want string
		wantErr    bool
	}{
		{":8086", "127.0.0.1:8086", false},
		{":0", "127.0.0.1:0", false},
		{"127.0.0.1:8086", "127.0.0.1:8086", false},
		{"127.0.0.2:8086", "127.0.0.2:8086", false},
		{"[::1]:8086", "[::1]:8086", false},
		{"localhost:8086", "localhost:8086", false},
		{"", "", false},
		{"0.0.0.0:8086", "", true},
		{"[::]:8086", "", true},
		{"192.168.1.5:8086", "", true},
		{"example.com:8086", "", true},
		{"8086", "", true},
	}
	for _, tt := range tests {
		got, err := Loopback(tt.addr)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("Loopback(%q) = %q, %v; want %q, error %v", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
}
