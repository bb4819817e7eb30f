package pay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// A payment password is a short PIN: 10^6 six-digit candidates, which no
// hash cost makes slow to search once the hash is stolen with the key that
// made it. What protects it is the lockout, online, and offline a secret
// kept outside the database: the pepper. So a payment password is stored
// as HMAC-SHA256 under a pepper, salted by the wallet's user id, with the
// pepper's key id beside it. Wallets opened before the pepper hold bcrypt
// hashes (no key id); they are checked as they are and rehashed under the
// current pepper on the next right password, as is a hash under an older
// pepper.

// MinPepperBytes is the least secret a pepper may have: as much as the
// HMAC-SHA256 it keys, so it is no weaker than the hash.
const MinPepperBytes = 32

// Pepper is one secret of the payment-password hash, named by the key id
// stored beside each hash made with it.
type Pepper struct {
	ID     string
	Secret []byte
}

// Peppers are the secrets payment passwords are hashed with: the first is
// current and hashes every new or rehashed password; the others still
// check the hashes made with them until they are rehashed.
type Peppers []Pepper

// pepperID is what a key id may be: short, and free of the list's separators.
var pepperID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParsePeppers reads peppers written "id:base64secret,id:base64secret…",
// the current one first (standard or URL-safe base64, padded or not). No
// error shows a secret.
func ParsePeppers(s string) (Peppers, error) {
	var peppers Peppers
	seen := map[string]bool{}
	for i, entry := range strings.Split(s, ",") {
		id, encoded, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok || !pepperID.MatchString(id) {
			return nil, fmt.Errorf("pepper %d: want id:base64secret, the id of letters, digits, '.', '_' or '-'", i+1)
		}
		if seen[id] {
			return nil, fmt.Errorf("pepper %q: the key id is listed twice", id)
		}
		seen[id] = true
		secret, err := decodeSecret(encoded)
		if err != nil {
			return nil, fmt.Errorf("pepper %q: the secret is not base64", id)
		}
		if len(secret) < MinPepperBytes {
			return nil, fmt.Errorf("pepper %q: the secret has %d bytes, want at least %d", id, len(secret), MinPepperBytes)
		}
		peppers = append(peppers, Pepper{ID: id, Secret: secret})
	}
	return peppers, nil
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// DevPepper is the pepper of development mode, made from secret (a
// secret the service derives from its own key): its key id names the
// secret's fingerprint, so hashes made with another one are told apart.
func DevPepper(secret []byte) Pepper {
	sum := sha256.Sum256(secret)
	return Pepper{ID: "dev-" + hex.EncodeToString(sum[:4]), Secret: secret}
}

// StoredPassword is a payment password as the database keeps it: the hash,
// and the key id of the pepper that made it ("" for a bcrypt hash).
type StoredPassword struct {
	Hash  string
	KeyID string
}

// Costly reports whether checking the password takes a slow hash's time
// (bcrypt) rather than an HMAC's: what pay bounds the concurrency of.
func (p StoredPassword) Costly() bool { return p.KeyID == "" }

// ErrNoPepper is a store asked to hash a payment password without any pepper.
var ErrNoPepper = errors.New("no payment password pepper is configured")

// Hash hashes a new payment password of userID under the current pepper.
func (ps Peppers) Hash(userID int64, password string) (StoredPassword, error) {
	if len(ps) == 0 {
		return StoredPassword{}, ErrNoPepper
	}
	return StoredPassword{Hash: peppered(ps[0], userID, password), KeyID: ps[0].ID}, nil
}

// Check compares password with the stored hash of userID's wallet. It
// returns ErrWrongPassword if they differ; when they match, rehash is the
// password hashed under the current pepper if the stored one is not
// (bcrypt, or an older pepper), else nil.
func (ps Peppers) Check(userID int64, stored StoredPassword, password string) (rehash *StoredPassword, err error) {
	if stored.KeyID == "" {
		err := bcrypt.CompareHashAndPassword([]byte(stored.Hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return nil, ErrWrongPassword
		}
		if err != nil {
			return nil, fmt.Errorf("check payment password: %w", err)
		}
	} else {
		pepper, ok := ps.byID(stored.KeyID)
		if !ok {
			return nil, fmt.Errorf("check payment password: its pepper %q is not configured", stored.KeyID)
		}
		if !hmac.Equal([]byte(peppered(pepper, userID, password)), []byte(stored.Hash)) {
			return nil, ErrWrongPassword
		}
	}
	if len(ps) == 0 || stored.KeyID == ps[0].ID {
		return nil, nil
	}
	current, err := ps.Hash(userID, password)
	return &current, err
}

func (ps Peppers) byID(id string) (Pepper, bool) {
	for _, p := range ps {
		if p.ID == id {
			return p, true
		}
	}
	return Pepper{}, false
}

// peppered is HMAC-SHA256 under the pepper of the user id and the password:
// the user id salts it, so one PIN hashes differently in every wallet.
func peppered(p Pepper, userID int64, password string) string {
	mac := hmac.New(sha256.New, p.Secret)
	mac.Write([]byte("paytrade payment password\x00"))
	mac.Write(binary.BigEndian.AppendUint64(nil, uint64(userID)))
	mac.Write([]byte(password))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// BusyRetry is how long a payment refused for checks in flight is asked
// to wait: a check takes milliseconds.
const BusyRetry = time.Second

// CheckRefused is the refusal of a password check the wallet did not let
// start: locked for lockedFor, or, when not locked, all its attempts in
// flight.
func CheckRefused(lockedFor time.Duration) error {
	if lockedFor > 0 {
		return PasswordLocked(lockedFor)
	}
	return ErrPasswordChecksBusy.WithRetryAfter(BusyRetry)
}
