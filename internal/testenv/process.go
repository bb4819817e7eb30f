package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// Build builds the command in package pkg (an import path such as
// github.com/paytrade/paytrade/cmd/pay) with the build tags, once per test
// binary and set of tags, and returns the executable's path. Tests that
// need a process to die for real, by SIGKILL, run the real binary rather
// than run() in their own process.
func Build(tb testing.TB, pkg string, tags ...string) string {
	tb.Helper()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	key := strings.Join(append([]string{pkg}, tags...), ",")
	if bin, ok := builds.bins[key]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "paytrade-bin")
		if err != nil {
			tb.Fatal(err)
		}
		builds.dir, builds.bins = dir, map[string]string{}
	}
	bin := filepath.Join(builds.dir, fmt.Sprintf("%s-%d", filepath.Base(pkg), len(builds.bins)))
	out, err := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", bin, pkg).CombinedOutput()
	if err != nil {
		tb.Fatalf("go build -tags %q %s: %v\n%s", strings.Join(tags, ","), pkg, err, out)
	}
	builds.bins[key] = bin
	return bin
}

// Process is one life of a service binary started by a test.
type Process struct {
	Name string
	// BaseURL is where it serves HTTP, e.g. http://127.0.0.1:40123.
	BaseURL string
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // set before exited closes

	mu  sync.Mutex
	log []string // its last log lines, for a failing test to show
}

// maxLogLines bounds what a Process keeps of its output.
const maxLogLines = 200

// StartProcess runs binary with exactly env (plus PATH) and waits until it
// logs "<name> listening" with its address. The process is killed when the
// test ends, if it is still running; its last log lines are printed if the
// test failed.
func StartProcess(tb testing.TB, binary, name string, env []string) *Process {
	tb.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go p.scan(pr, name+" listening", addr)
	go func() {
		p.err = cmd.Wait()
		_ = pw.Close()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("last output of %s:\n%s", name, p.Output())
		}
	})
	select {
	case a := <-addr:
		p.BaseURL = "http://" + a
	case <-p.exited:
		tb.Fatalf("%s exited at start-up: %v\n%s", name, p.err, p.Output())
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s did not start listening within 30s\n%s", name, p.Output())
	}
	return p
}

// scan keeps the output's last lines and sends the address of the line
// whose msg is listening.
func (p *Process) scan(r io.Reader, listening string, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.log = append(p.log, line)
		if len(p.log) > maxLogLines {
			p.log = p.log[len(p.log)-maxLogLines:]
		}
		p.mu.Unlock()
		var entry struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == listening {
			addr <- entry.Addr
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// Output returns the process's last log lines.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// Kill kills the process with SIGKILL, if it runs, and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Stop asks the process to shut down with SIGTERM and waits until it has,
// failing the test if that takes longer than within or it exits with an error.
func (p *Process) Stop(tb testing.TB, within time.Duration) {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			tb.Errorf("%s stopped with %v\n%s", p.Name, p.err, p.Output())
		}
	case <-time.After(within):
		tb.Errorf("%s did not stop within %v of SIGTERM", p.Name, within)
		p.Kill()
	}
}

// WaitKilled waits for the process to die by SIGKILL, as a crash point does.
func (p *Process) WaitKilled(tb testing.TB, within time.Duration) {
	tb.Helper()
	select {
	case <-p.exited:
		var exit *exec.ExitError
		if !errors.As(p.err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			tb.Fatalf("%s ended with %v, want killed by SIGKILL at its crash point\n%s", p.Name, p.err, p.Output())
		}
	case <-time.After(within):
		tb.Fatalf("%s did not reach its crash point within %v", p.Name, within)
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Pid is the process's id, for measuring what it costs (its CPU time in
// /proc, a profile).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// RunFunc is the signature of a service's run function in its main package.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// StartInProcess calls run as the service's main does, with env as its
// whole environment, in this test's process, and waits until it logs
// "<name> listening". It returns the base URL and a function that cancels
// run's context and returns run's error, failing if it does not return
// within 20 s.
func StartInProcess(tb testing.TB, name string, run RunFunc, env map[string]string) (string, func() error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, stdoutW, io.Discard)
		_ = stdoutW.Close()
	}()
	p := &Process{Name: name}
	addr := make(chan string, 1)
	go p.scan(stdoutR, name+" listening", addr)
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("%s did not stop within 20s of its context ending", name)
		}
	})
	tb.Cleanup(func() { _ = stop() })
	select {
	case a := <-addr:
		return "http://" + a, stop
	case err := <-done:
		tb.Fatalf("%s exited at start-up: %v\n%s", name, err, p.Output())
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s did not start listening within 30s\n%s", name, p.Output())
	}
	return "", nil
}

// RunUntilExit runs binary with exactly env (plus PATH), as StartProcess
// does, for a binary that is expected to stop on its own — a refusal at
// start-up. It returns everything the process wrote and how it ended,
// failing the test if it still runs after within.
func RunUntilExit(tb testing.TB, binary string, env []string, within time.Duration) (output string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		tb.Fatalf("%s still ran after %v; want it to stop on its own\n%s", filepath.Base(binary), within, out)
	}
	return string(out), err
}
