package bench

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// cpuTicks reads the machine's busy and total CPU time from /proc/stat, in
// clock ticks; ok is false where there is no /proc. Busy over a timed
// window tells a step that ran out of CPU (near 100%) from one that waited.
func cpuTicks() (busy, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, false
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range fields[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle and iowait
			busy += v
		}
	}
	return busy, total, true
}

// cpuWindow measures the share of all cores busy between start and stop.
type cpuWindow struct {
	busy, total uint64
	ok          bool
}

func startCPU() cpuWindow {
	b, t, ok := cpuTicks()
	return cpuWindow{b, t, ok}
}

// stop returns the busy share since start, or -1 if unknown.
func (w cpuWindow) stop() float64 {
	b, t, ok := cpuTicks()
	if !ok || !w.ok || t <= w.total {
		return -1
	}
	return float64(b-w.busy) / float64(t-w.total)
}

// relayCounts are pay's outbox counters: events the relay published and
// batches it sent (its confirm-latency histogram counts one per batch).
type relayCounts struct {
	events, batches float64
}

// scrapeRelay reads relayCounts from pay's /metrics; zero if unreadable,
// since they only explain a rate, they do not make one.
func scrapeRelay(client *http.Client, payURL string) relayCounts {
	res, err := client.Get(payURL + "/metrics")
	if err != nil {
		return relayCounts{}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return relayCounts{}
	}
	var c relayCounts
	for line := range strings.Lines(string(data)) {
		name, rest, _ := strings.Cut(line, "{")
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest[i+1:]), 64)
			if err != nil {
				continue
			}
			switch name {
			case "paytrade_outbox_published_total":
				c.events = v
			case "paytrade_outbox_confirm_seconds_count":
				c.batches = v
			}
		}
	}
	return c
}
