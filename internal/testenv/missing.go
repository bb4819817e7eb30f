package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// SkippedFileEnv names the environment variable that holds the file where
// Missing records each skip, one line a test, for the summary make test
// prints at its end (scripts/skipped.sh).
const SkippedFileEnv = "PAYTRADE_SKIPPED_FILE"

// Missing is for a test that needs what this machine or user does not
// give it: root, a local rabbitmq-server, a browser, a tool. Outside CI
// the test is skipped, saying why and how to run it, and the skip is
// recorded for make test's closing line; under CI=true, where everything
// must run, the test fails instead. need says what is missing ("root, to
// start RabbitMQ nodes"), run how to get it ("sudo make test").
func Missing(tb testing.TB, need, run string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("needs %s, and CI runs every test: %s", need, run)
	}
	if err := recordSkip(tb.Name(), need, run, ""); err != nil {
		tb.Errorf("record the skip for make test's summary: %v", err)
	}
	tb.Skipf("SKIPPED: needs %s; to run it: %s", need, run)
}

// Partly is Missing for a test that can still run, with less than it
// proves where it has need: outside CI it goes on, says so in its log and
// is counted in make test's closing line as run in part; under CI=true it
// fails, like a skip.
func Partly(tb testing.TB, need, instead, run string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("needs %s, and CI runs every test in full: %s", need, run)
	}
	if err := recordSkip(tb.Name(), need, run, instead); err != nil {
		tb.Errorf("record the partial run for make test's summary: %v", err)
	}
	tb.Logf("RUNS IN PART: needs %s, so %s; to run it in full: %s", need, instead, run)
}

// recordSkip appends "need<TAB>run<TAB>test" to the skipped file, if make
// test named one, with "<TAB>instead" for a test that ran in part. Test binaries run in parallel: each line is one write to
// a file opened for appending, so lines never interleave.
func recordSkip(test, need, run, instead string) error {
	file := os.Getenv(SkippedFileEnv)
	if file == "" {
		return nil
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	clean := strings.NewReplacer("\t", " ", "\n", " ")
	line := fmt.Sprintf("%s\t%s\t%s", clean.Replace(need), clean.Replace(run), clean.Replace(test))
	if instead != "" {
		line += "\t" + clean.Replace(instead)
	}
	line += "\n"
	if _, err := f.WriteString(line); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
