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

// Chromium returns the headless browser of the browser tests: Debian's
// chromium (scripts/install-tools.sh chromium installs it), or the binary
// CHROMIUM names (macOS: /Applications/Chromium.app/Contents/MacOS/Chromium).
// Without one the test is skipped (testenv.Missing).
func Chromium(tb testing.TB) string {
	tb.Helper()
	name := os.Getenv("CHROMIUM")
	if name == "" {
		name = "chromium"
	}
	browser, err := exec.LookPath(name)
	if err != nil {
		tb.Log(err)
		Missing(tb, "Chromium, for the browser tests",
			"scripts/install-tools.sh chromium, or set CHROMIUM to a Chromium binary")
	}
	return browser
}

// ChromiumFlags are the flags every browser test starts Chromium with:
// headless, and reaching nothing but the page it is given (no sync, no
// updates, no background traffic, which this machine's closed network
// would refuse many at a time).
var ChromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
}

// DumpDOM loads url in headless Chromium, lets the page run its scripts for
// budget of virtual time — Chromium advances it only while no request is
// pending, so fetches finish within it — and returns the DOM as it then is.
// Each call gets a profile of its own.
func DumpDOM(tb testing.TB, url string, budget time.Duration) string {
	tb.Helper()
	browser := Chromium(tb)
	ctx, cancel := context.WithTimeout(context.Background(), budget+time.Minute)
	defer cancel()
	args := append(append([]string{}, ChromiumFlags...),
		"--user-data-dir="+tb.TempDir(),
		"--virtual-time-budget="+strconv.FormatInt(budget.Milliseconds(), 10),
		"--dump-dom", url)
	cmd := exec.CommandContext(ctx, browser, args...)
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
