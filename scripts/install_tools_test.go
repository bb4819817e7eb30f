// Package scripts holds the tests of the shell scripts that make test and
// make up run on a developer's machine, run as they would be there.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installTools copies install-tools.sh into a tree of its own (it works in
// the tree it lies in, and must not see this one's .tools/) and runs it
// with env and path as the whole of its environment's PATH, returning what
// it said, what the stand-ins it ran recorded, and whether it succeeded.
func installTools(t *testing.T, path string, env []string, tools ...string) (said, ran string, ok bool) {
	t.Helper()
	tree := t.TempDir()
	script, err := os.ReadFile("install-tools.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "scripts", "install-tools.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command("/bin/bash", append([]string{filepath.Join(tree, "scripts", "install-tools.sh")}, tools...)...)
	cmd.Env = append([]string{"PATH=" + path, "HOME=" + t.TempDir(), "RAN=" + log}, env...)
	out, err := cmd.CombinedOutput()
	recorded, _ := os.ReadFile(log)
	return string(out), string(recorded), err == nil
}

// standIns writes executables into a directory of their own: each records
// its name and arguments in $RAN, then runs its body.
func standIns(t *testing.T, bodies map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range bodies {
		script := "#!/bin/bash\necho \"" + name + " $*\" >>\"$RAN\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// systemWithout is a directory of links to every command of /usr/bin and
// /bin but the ones named: this machine, as one that lacks them.
func systemWithout(t *testing.T, lacking ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, bin := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin"} {
		entries, err := os.ReadDir(bin)
		if err != nil {
			continue
		}
		for _, e := range entries {
			link := filepath.Join(dir, e.Name())
			if contains(lacking, e.Name()) {
				continue
			}
			if _, err := os.Lstat(link); err == nil {
				continue
			}
			if err := os.Symlink(filepath.Join(bin, e.Name()), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Every way a package could be installed, as stand-ins that record being run.
var installers = map[string]string{"apt-get": "exit 1", "dpkg": "exit 1", "sudo": "exit 1", "snap": "exit 1", "brew": "exit 1"}

func TestInstallToolsUsesChromiumComposeAndPromtoolYouHaveAndInstallsNothing(t *testing.T) {
	mine := standIns(t, map[string]string{"my-chromium": "", "my-compose": "", "promtool": ""})
	path := standIns(t, installers) + ":" + mine + ":" + systemWithout(t, "chromium", "promtool")
	said, ran, ok := installTools(t, path,
		[]string{"CHROMIUM=" + filepath.Join(mine, "my-chromium"), "DOCKER_COMPOSE=" + filepath.Join(mine, "my-compose")},
		"chromium", "compose", "promtool")
	if !ok || ran != "" || said != "" {
		t.Fatalf("with CHROMIUM, DOCKER_COMPOSE and promtool on the PATH, want nothing run and nothing said; succeeded %v, ran:\n%s\nsaid:\n%s", ok, ran, said)
	}
}

func TestInstallToolsOffDebianSaysWhatItCannotGetAndLeavesItToTheTests(t *testing.T) {
	path := systemWithout(t, "apt-get", "dpkg", "sudo", "chromium", "promtool")
	said, _, ok := installTools(t, path, nil, "chromium", "compose", "promtool")
	if !ok {
		t.Fatalf("want success: the tests that need the tools skip (or fail under CI), not the install; said:\n%s", said)
	}
	for _, want := range []string{"not getting chromium: no apt-get", "not getting promtool: no apt-get", "not getting Compose v2: no apt-get"} {
		if !strings.Contains(said, want) {
			t.Errorf("said nothing like %q:\n%s", want, said)
		}
	}
}

// TestInstallToolsSaysWhatItInstallsAndStartsNoService runs it where
// nothing is there yet, with stand-ins for apt-get and dpkg that do what
// they would: every install is announced before it runs, and promtool and
// Compose are unpacked, never installed, so that no package's service (the
// prometheus package's server on :9090) is ever started.
func TestInstallToolsSaysWhatItInstallsAndStartsNoService(t *testing.T) {
	fakes := standIns(t, map[string]string{
		"apt-get": `for a; do [[ $a == download ]] && touch "${@: -1}_1_amd64.deb"; done; exit 0`,
		"dpkg":    `[[ $1 == -x ]] && mkdir -p "$3/usr/bin" && printf '#!/bin/sh\n' >"$3/usr/bin/promtool" && cp "$3/usr/bin/promtool" "$3/usr/bin/docker-compose" && chmod +x "$3"/usr/bin/*; exit 0`,
		"sudo":    `[[ $1 == -n ]] && shift; exec "$@"`,
	})
	path := fakes + ":" + systemWithout(t, "apt-get", "dpkg", "sudo", "chromium", "promtool")
	said, ran, ok := installTools(t, path, nil, "chromium", "compose", "promtool")
	if !ok {
		t.Fatalf("failed; said:\n%s", said)
	}
	for _, want := range []string{"chromium: installing", "promtool: unpacking", "compose: unpacking"} {
		if !strings.Contains(said, want) {
			t.Errorf("did not say %q before doing it:\n%s", want, said)
		}
	}
	var installs []string
	for _, line := range strings.Split(ran, "\n") {
		if strings.HasPrefix(line, "apt-get ") && strings.Contains(line, " install ") {
			installs = append(installs, line)
		}
	}
	if len(installs) != 1 || !strings.HasSuffix(installs[0], " chromium") {
		t.Errorf("want one apt-get install, of chromium; ran:\n%s", ran)
	}
	if strings.Contains(ran, "systemctl") || strings.Contains(ran, "service ") || strings.Contains(ran, "invoke-rc.d") {
		t.Errorf("touched a service:\n%s", ran)
	}
}
