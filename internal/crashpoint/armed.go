//go:build faultinject

package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Set is the crash points armed in this process; the zero Set arms none.
type Set map[string]*point

// point kills the process on its nth hit.
type point struct {
	nth  int64
	hits atomic.Int64
}

// Parse arms the comma-separated crash points in spec (usually the
// PAYTRADE_CRASH_POINTS environment variable). A point is a name, which
// kills the process the first time it is reached, or name@n, which lets it
// be reached n-1 times first — so a load test can crash in mid-stream.
func Parse(spec string) (Set, error) {
	s := Set{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, nth, found := strings.Cut(item, "@")
		if name == "" {
			return nil, fmt.Errorf("crash point %q: no name", item)
		}
		p := &point{nth: 1}
		if found {
			n, err := strconv.ParseInt(nth, 10, 64)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("crash point %q: want name or name@n with n ≥ 1", item)
			}
			p.nth = n
		}
		s[name] = p
	}
	return s, nil
}

// Hit kills the process with SIGKILL if name is armed and this is its nth hit.
func (s Set) Hit(name string) {
	p := s[name]
	if p == nil || p.hits.Add(1) != p.nth {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not deliverable late, but never run on past it
}

// String lists the armed points as Parse reads them.
func (s Set) String() string {
	items := make([]string, 0, len(s))
	for name, p := range s {
		items = append(items, name+"@"+strconv.FormatInt(p.nth, 10))
	}
	return strings.Join(items, ",")
}
