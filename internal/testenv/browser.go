package testenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// DumpDOM loads url in headless Chromium (Debian's chromium, which
// scripts/install-tools.sh installs), lets the page run its scripts for
// budget of virtual time — Chromium advances it only while no request is
// pending, so fetches finish within it — and returns the DOM as it then is.
// Each call gets a profile of its own and reaches nothing but url: no sync,
// no updates, no background traffic. CHROMIUM names another Chromium
// binary (macOS: /Applications/Chromium.app/Contents/MacOS/Chromium). A
// missing browser fails the test unless -short.
func DumpDOM(tb testing.TB, url string, budget time.Duration) string {
	tb.Helper()
	name := os.Getenv("CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	browser, err := exec.LookPath(name)
	if err != nil {
		if testing.Short() {
			tb.Skipf("-short: no chromium: %v", err)
		}
		tb.Fatalf("no chromium to load %s in: %v\nbrowser tests need it: scripts/install-tools.sh chromium", url, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+tb.TempDir(),
		"--virtual-time-budget="+strconv.FormatInt(budget.Milliseconds(), 10),
		"--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			tb.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, exit.Stderr)
		}
		tb.Fatalf("chromium --dump-dom %s: %v", url, err)
	}
	return string(out)
}
