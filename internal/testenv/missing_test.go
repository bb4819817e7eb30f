package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	missingChildEnv = "PAYTRADE_TESTENV_MISSING_CHILD"
	partlyChildEnv  = "PAYTRADE_TESTENV_PARTLY_CHILD"
)

// TestMissingChild is the test that TestMissingSkipsWithTheReasonOutsideCI…
// runs in a child process: it needs what is missing.
func TestMissingChild(t *testing.T) {
	if os.Getenv(missingChildEnv) != "1" {
		return
	}
	if os.Getenv(partlyChildEnv) == "1" {
		Partly(t, "a saddle", "rode bareback", "buy one")
		t.Log("still running after Partly")
		return
	}
	Missing(t, "a unicorn, to ride", "bring one")
	t.Log("still running after Missing")
}

// runMissingChild runs TestMissingChild in a child process with env (and
// without the parent's CI and skipped file), returning its output and
// whether it passed.
func runMissingChild(t *testing.T, env ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMissingChild$", "-test.v", "-test.count=1")
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "CI" && name != SkippedFileEnv {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append(env, missingChildEnv+"=1")...)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func TestMissingSkipsWithTheReasonOutsideCIFailsUnderCIAndMakeTestSumsUpInOneLine(t *testing.T) {
	skipped := filepath.Join(t.TempDir(), "skipped")

	out, passed := runMissingChild(t, SkippedFileEnv+"="+skipped)
	if !passed || !strings.Contains(out, "--- SKIP: TestMissingChild") ||
		!strings.Contains(out, "needs a unicorn, to ride; to run it: bring one") || strings.Contains(out, "still running") {
		t.Fatalf("outside CI, want the test skipped with the reason and how to run it; passed %v:\n%s", passed, out)
	}
	recorded, err := os.ReadFile(skipped)
	if err != nil {
		t.Fatalf("the skip was not recorded for make test's summary: %v", err)
	}
	if want := "a unicorn, to ride\tbring one\tTestMissingChild\n"; string(recorded) != want {
		t.Fatalf("recorded %q, want %q", recorded, want)
	}

	out, passed = runMissingChild(t, "CI=true", SkippedFileEnv+"="+skipped)
	if passed || !strings.Contains(out, "--- FAIL: TestMissingChild") || !strings.Contains(out, "CI runs every test") {
		t.Fatalf("under CI=true, want the test failed; passed %v:\n%s", passed, out)
	}

	// A second test skipped for the same reason, and a script's pass for another.
	f, err := os.OpenFile(skipped, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("a unicorn, to ride\tbring one\tTestOther\nroot, for a pass\tsudo make test\tscripts/pass.sh\n" +
		"a saddle\tbuy one\tTestRide\trode bareback\na saddle\tbuy one\tTestTrot\trode bareback\n")
	_ = f.Close()
	summary := func(env ...string) (string, bool) {
		cmd := exec.Command(repoFile(t, "scripts/skipped.sh"), skipped)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err == nil
	}
	out, passed = summary("CI=")
	want := "make test: SKIPPED 3: 2 needing a unicorn, to ride (to run: bring one); 1 needing root, for a pass (to run: sudo make test)" +
		"; RAN IN PART 2: 2 needing a saddle, so rode bareback (to run in full: buy one)\n"
	if !passed || out != want {
		t.Fatalf("summary (passed %v):\n%q\nwant one line:\n%q", passed, out, want)
	}
	out, passed = summary("CI=true")
	if passed || strings.Count(out, "\n") != 1 || !strings.Contains(out, "CI=true runs everything") {
		t.Fatalf("under CI=true, want the summary to fail the run in one line; passed %v:\n%s", passed, out)
	}
}

func TestPartlyRunsOnAndIsCountedOutsideCIAndFailsUnderCI(t *testing.T) {
	skipped := filepath.Join(t.TempDir(), "skipped")
	out, passed := runMissingChild(t, SkippedFileEnv+"="+skipped, partlyChildEnv+"=1")
	if !passed || !strings.Contains(out, "--- PASS: TestMissingChild") || !strings.Contains(out, "still running after Partly") ||
		!strings.Contains(out, "RUNS IN PART: needs a saddle, so rode bareback; to run it in full: buy one") {
		t.Fatalf("outside CI, want the test to go on and say what it did instead; passed %v:\n%s", passed, out)
	}
	recorded, err := os.ReadFile(skipped)
	if err != nil {
		t.Fatalf("the partial run was not recorded for make test's summary: %v", err)
	}
	if want := "a saddle\tbuy one\tTestMissingChild\trode bareback\n"; string(recorded) != want {
		t.Fatalf("recorded %q, want %q", recorded, want)
	}
	out, passed = runMissingChild(t, "CI=true", partlyChildEnv+"=1")
	if passed || !strings.Contains(out, "--- FAIL: TestMissingChild") || strings.Contains(out, "still running") {
		t.Fatalf("under CI=true, want the test failed; passed %v:\n%s", passed, out)
	}
}
