package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
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

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// this runs on (getconf CLK_TCK).
const clockTicks = 100

// procTicks returns a process's user+system CPU time from /proc/pid/stat,
// in clock ticks; ok is false when it cannot be read.
func procTicks(pid int) (uint64, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: count fields from
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return utime + stime, true
}

// serverTicks reads the CPU time of every process named comm (postgres
// backends, RabbitMQ's beam.smp: every node of a cluster), by pid.
func serverTicks(comm string) map[int]uint64 {
	ticks := map[int]uint64{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return ticks
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(name)) != comm {
			continue
		}
		if t, ok := procTicks(pid); ok {
			ticks[pid] = t
		}
	}
	return ticks
}

// cpuParts are the processes whose CPU time a sweep step splits its cost
// into, in the order the table prints them.
var cpuParts = []string{"pay", "trade", "postgres", "rabbitmq", "load"}

// cpuShare is the CPU time each part spent over a window.
type cpuShare map[string]time.Duration

// cpuSample is the CPU clocks of each part's processes at one moment.
type cpuSample map[string]map[int]uint64

// sampleParts reads the CPU clocks of pay, trade, every postgres process,
// every RabbitMQ node and this test process (the load generator).
func sampleParts(payPid, tradePid int) cpuSample {
	s := cpuSample{"postgres": serverTicks("postgres"), "rabbitmq": serverTicks("beam.smp")}
	for part, pid := range map[string]int{"pay": payPid, "trade": tradePid, "load": os.Getpid()} {
		s[part] = map[int]uint64{}
		if t, ok := procTicks(pid); ok {
			s[part][pid] = t
		}
	}
	return s
}

// since returns the CPU time each part spent from before to s: of the
// processes alive at both moments, so that a process that ends or starts
// meanwhile (another test's broker, a postgres backend) skews nothing.
func (s cpuSample) since(before cpuSample) cpuShare {
	out := cpuShare{}
	for _, p := range cpuParts {
		var ticks uint64
		for pid, t := range s[p] {
			if b, ok := before[p][pid]; ok && t >= b {
				ticks += t - b
			}
		}
		out[p] = time.Duration(ticks) * time.Second / clockTicks
	}
	return out
}

// perOrder renders the share as milliseconds of CPU per order paid.
func (c cpuShare) perOrder(orders int) string {
	if len(c) == 0 || orders == 0 {
		return "—"
	}
	var parts []string
	var total time.Duration
	for _, p := range cpuParts {
		total += c[p]
		parts = append(parts, fmt.Sprintf("%s %.2f", p, c[p].Seconds()*1000/float64(orders)))
	}
	return fmt.Sprintf("%.2f = %s", total.Seconds()*1000/float64(orders), strings.Join(parts, " + "))
}

// profile fetches a CPU profile of seconds from a pprof listener into
// path, for make bench's PAYTRADE_BENCH_PROFILE.
func profile(client *http.Client, addr, path string, seconds int) error {
	res, err := client.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("profile from %s: %s", addr, res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// msPerOrder renders one part of a run's CPU as milliseconds per order paid.
func msPerOrder(r run, part string) string {
	if r.paid == 0 || len(r.cpu) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", r.cpu[part].Seconds()*1000/float64(r.paid))
}
