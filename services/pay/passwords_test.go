package pay_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/pay"
)

func secret(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(b)), pay.MinPepperBytes)))
}

func TestParsePeppersTakesTheFirstAsCurrentAndRefusesWeakOrMalformedOnesWithoutShowingThem(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", pay.MinPepperBytes-1)))
	for _, tt := range []struct {
		name, in string
		ids      []string // nil: refused
	}{
		{"one", "k1:" + secret('a'), []string{"k1"}},
		{"current first, then older", "k2:" + secret('b') + ", k1:" + secret('a'), []string{"k2", "k1"}},
		{"url-safe, unpadded", "k1:" + strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 40))), "="), []string{"k1"}},
		{"empty", "", nil},
		{"no id", secret('a'), nil},
		{"an id with a space", "k 1:" + secret('a'), nil},
		{"shorter than 32 bytes", "k1:" + short, nil},
		{"not base64", "k1:" + strings.Repeat("!", 44), nil},
		{"one id twice", "k1:" + secret('a') + ",k1:" + secret('b'), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pay.ParsePeppers(tt.in)
			if tt.ids == nil {
				if err == nil {
					t.Fatalf("ParsePeppers(%q) = %v, want a refusal", tt.in, got)
				}
				for _, part := range strings.Split(tt.in, ",") {
					if _, s, ok := strings.Cut(part, ":"); ok && len(s) > 8 && strings.Contains(err.Error(), s) {
						t.Errorf("the refusal shows the secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range got {
				ids = append(ids, p.ID)
				if len(p.Secret) < pay.MinPepperBytes {
					t.Errorf("pepper %s: %d bytes", p.ID, len(p.Secret))
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.ids, ",") {
				t.Errorf("ids %v, want %v", ids, tt.ids)
			}
		})
	}
}

func peppers(t *testing.T, s string) pay.Peppers {
	t.Helper()
	p, err := pay.ParsePeppers(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The same PIN hashes differently in every wallet and under every pepper,
// and the hash is checked only with the pepper it names.
func TestAPepperedHashIsSaltedByTheWalletAndKeyedByThePepper(t *testing.T) {
	old, current := peppers(t, "k1:"+secret('a')), peppers(t, "k2:"+secret('b')+",k1:"+secret('a'))
	h1, _ := current.Hash(1, "123456")
	h2, _ := current.Hash(2, "123456")
	h1old, _ := old.Hash(1, "123456")
	if h1.Hash == h2.Hash || h1.Hash == h1old.Hash || h1.KeyID != "k2" || h1old.KeyID != "k1" {
		t.Errorf("hashes %v %v %v: want three different ones, under k2, k2 and k1", h1, h2, h1old)
	}
	if _, err := old.Check(1, h1, "123456"); err == nil || errors.Is(err, pay.ErrWrongPassword) {
		t.Errorf("a hash under a pepper not configured: %v, want an error that is no wrong password", err)
	}
	if _, err := current.Check(2, h1, "123456"); !errors.Is(err, pay.ErrWrongPassword) {
		t.Errorf("wallet 1's hash checked for wallet 2: %v, want %v", err, pay.ErrWrongPassword)
	}
	if _, err := (pay.Peppers{}).Hash(1, "123456"); !errors.Is(err, pay.ErrNoPepper) {
		t.Errorf("hash without a pepper: %v, want %v", err, pay.ErrNoPepper)
	}
}

// Which hash is current and when to rehash: a right password under bcrypt
// or an older pepper is rehashed under the current one; a wrong one, or
// one already current, is not.
func TestARightPasswordIsRehashedUnderTheCurrentPepperAndOnlyThen(t *testing.T) {
	ps := peppers(t, "k2:"+secret('b')+",k1:"+secret('a'))
	legacy, err := bcrypt.GenerateFromPassword([]byte("123456"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	current, _ := ps.Hash(7, "123456")
	older, _ := ps[1:].Hash(7, "123456")
	for _, tt := range []struct {
		name   string
		stored pay.StoredPassword
		costly bool
		rehash bool
	}{
		{"bcrypt, from before the pepper", pay.StoredPassword{Hash: string(legacy)}, true, true},
		{"an older pepper", older, false, true},
		{"the current pepper", current, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.stored.Costly() != tt.costly {
				t.Errorf("Costly() = %v, want %v", tt.stored.Costly(), tt.costly)
			}
			if r, err := ps.Check(7, tt.stored, "654321"); !errors.Is(err, pay.ErrWrongPassword) || r != nil {
				t.Errorf("wrong password: rehash %v, %v; want none, %v", r, err, pay.ErrWrongPassword)
			}
			r, err := ps.Check(7, tt.stored, "123456")
			if err != nil {
				t.Fatal(err)
			}
			if (r != nil) != tt.rehash {
				t.Fatalf("rehash %v, want one: %v", r, tt.rehash)
			}
			if r != nil && *r != current {
				t.Errorf("rehashed as %v, want %v", *r, current)
			}
		})
	}
}

func TestARefusedCheckIsLockedWhileTheWalletIsLockedElseBusy(t *testing.T) {
	for _, tt := range []struct {
		lockedFor time.Duration
		want      error
		retry     time.Duration
	}{
		{15 * time.Minute, pay.ErrPasswordLocked, 15 * time.Minute},
		{time.Millisecond, pay.ErrPasswordLocked, time.Second},
		{0, pay.ErrPasswordChecksBusy, pay.BusyRetry},
	} {
		err := pay.CheckRefused(tt.lockedFor)
		p, _ := problem.As(err)
		if !errors.Is(err, tt.want) || p.RetryAfter != tt.retry {
			t.Errorf("CheckRefused(%v) = %v (Retry-After %v), want %v, %v", tt.lockedFor, err, p.RetryAfter, tt.want, tt.retry)
		}
	}
}

// BenchmarkPepperedCheck is what one guess costs an attacker who holds the
// database and the pepper: the offline cost per PIN in docs/design.md.
func BenchmarkPepperedCheck(b *testing.B) {
	ps, err := pay.ParsePeppers("k1:" + secret('a'))
	if err != nil {
		b.Fatal(err)
	}
	stored, _ := ps.Hash(1, "123456")
	for b.Loop() {
		_, _ = ps.Check(1, stored, "654321")
	}
}

// BenchmarkBcryptCheck is the same guess against the bcrypt hash at the
// cost wallets were opened with before the pepper (10).
func BenchmarkBcryptCheck(b *testing.B) {
	hash, err := bcrypt.GenerateFromPassword([]byte("123456"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_, _ = pay.Peppers{}.Check(1, pay.StoredPassword{Hash: string(hash)}, "654321")
	}
}
