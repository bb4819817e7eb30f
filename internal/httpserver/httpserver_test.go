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
