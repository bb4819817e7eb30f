// The errors subcommands work on the error queue, where the consumer parks
// what it cannot process: list (errors_list.go) shows it, replay
// (errors_replay.go) sends it back; both open it as errors_queue.go does.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
)

func runErrors(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("errors: missing subcommand")
	}
	switch args[0] {
	case "list":
		return runErrorsList(ctx, args[1:], getenv, stdout, stderr)
	case "replay":
		return runErrorsReplay(ctx, args[1:], getenv, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("errors: unknown subcommand %q", args[0])
}

// brokerSettings reads the broker connection and the error queue's name
// the way the services read them.
func brokerSettings(getenv func(string) string) (broker.Config, string, error) {
	r := config.NewReader(getenv)
	cfg := broker.ReadConfig(r, "paytradectl")
	queue := r.String("MQ_ERROR_QUEUE", "error.queue")
	return cfg, queue, r.Err()
}

// exchangeName shows the default exchange, whose name is empty, as AMQP tools do.
func exchangeName(name string) string {
	if name == "" {
		return "(AMQP default)"
	}
	return name
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine makes s fit one table cell: control characters (tabs and
// newlines would break the table) shown escaped, and at most n runes.
func oneLine(s string, n int) string {
	var b strings.Builder
	runes := 0
	for _, r := range s {
		if runes == n {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
		runes++
	}
	return b.String()
}
