package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileBuildsWithGoModsGoAndSendsNoLocalLeftovers keeps the image
// honest: its Go is go.mod's own version, not whatever a floating tag
// means that day, and the build context leaves out what make test and
// make up leave in the tree (the RabbitMQ 4.x root, fetched tools,
// binaries, secrets).
func TestDockerfileBuildsWithGoModsGoAndSendsNoLocalLeftovers(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goLine == nil {
		t.Fatal("no go line in go.mod")
	}
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM golang:(\S+?)-alpine\b`).FindSubmatch(dockerfile)
	switch {
	case from == nil:
		t.Errorf("Dockerfile builds FROM no golang:VERSION-alpine image; want go.mod's go %s", goLine[1])
	case string(from[1]) != string(goLine[1]):
		t.Errorf("Dockerfile builds FROM golang:%s-alpine, want go.mod's go %s", from[1], goLine[1])
	}

	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	ignored := map[string]bool{}
	for _, line := range strings.Split(string(ignore), "\n") {
		ignored[strings.TrimSpace(line)] = true
	}
	for _, want := range []string{".git", ".tools", ".rabbitmq4", ".rabbitmq4*", "bin", "deploy/.env", "deploy/infra.env", ".keys"} {
		if !ignored[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
