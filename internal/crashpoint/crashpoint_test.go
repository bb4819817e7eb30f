//go:build faultinject

package crashpoint_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/paytrade/paytrade/internal/crashpoint"
)

// items returns s.String() as a sorted list: a Set is a map, so String
// lists its points in no particular order.
func items(s crashpoint.Set) []string {
	str := s.String()
	if str == "" {
		return nil
	}
	list := strings.Split(str, ",")
	slices.Sort(list)
	return list
}

func TestParseArmsNamesAndNthHits(t *testing.T) {
	tests := []struct {
		spec string
		want []string // as String lists them, sorted
	}{
		{"", nil},
		{" , ,", nil},
		{"a", []string{"a@1"}},
		{"a,b@3", []string{"a@1", "b@3"}},
		{" a , b@3 ", []string{"a@1", "b@3"}},
		{"pay-after-commit@1", []string{"pay-after-commit@1"}},
		{"relay-after-confirm@250", []string{"relay-after-confirm@250"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := crashpoint.Parse(tt.spec)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.spec, err)
			}
			if got := items(s); !slices.Equal(got, tt.want) {
				t.Errorf("Parse(%q).String() lists %q, want %q", tt.spec, got, tt.want)
			}
		})
	}
}

func TestParseRefusesAnNthThatIsNotAPositiveInteger(t *testing.T) {
	for _, spec := range []string{"a@0", "a@x", "a@-1", "a@", "a@1.5", "ok,a@0"} {
		t.Run(spec, func(t *testing.T) {
			s, err := crashpoint.Parse(spec)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, nil; want an error", spec, s.String())
			}
			if s != nil {
				t.Errorf("Parse(%q) armed %q along with its error, want nothing", spec, s.String())
			}
		})
	}
}

func TestStringIsReadBackByParseAsTheSameSet(t *testing.T) {
	for _, spec := range []string{"", "a", "a,b@3", crashpoint.PayAfterCommit + "@7," + crashpoint.TradeAfterCommit} {
		t.Run(spec, func(t *testing.T) {
			first, err := crashpoint.Parse(spec)
			if err != nil {
				t.Fatalf("Parse(%q): %v", spec, err)
			}
			again, err := crashpoint.Parse(first.String())
			if err != nil {
				t.Fatalf("Parse(%q), reading back String of %q: %v", first.String(), spec, err)
			}
			if got, want := items(again), items(first); !slices.Equal(got, want) {
				t.Errorf("Parse(String()) lists %q, want %q", got, want)
			}
		})
	}
}

// A Hit that killed the process would end this test binary: surviving the
// calls is the assertion. The kill itself is tested on a child process, in
// cmd/pay/crash_test.go.
func TestHitDoesNotKillBeforeTheNthHitOfAnArmedPoint(t *testing.T) {
	s, err := crashpoint.Parse("armed@3,other")
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		s.Hit("not-armed")
	}
	s.Hit("armed")
	s.Hit("armed")
	var zero crashpoint.Set
	zero.Hit("armed")
	zero.Hit(crashpoint.PayAfterCommit)
}
