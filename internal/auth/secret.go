package auth

import (
	"errors"
	"fmt"

	"github.com/paytrade/paytrade/internal/config"
)

// MinSecretBytes is the shortest AUTH_JWT_SECRET a process accepts outside
// development: HS256's key should be as long as its output.
const MinSecretBytes = 32

// DevSecret is what the services and paytradectl sign with when
// AUTH_JWT_SECRET is unset and PAYTRADE_DEV=1, so a laptop works out of the
// box. It is in the repository, so nothing else accepts it.
const DevSecret = "paytrade-development-secret-everyone-can-read"

// ReadSecret reads AUTH_JWT_SECRET and PAYTRADE_DEV. Outside development
// (PAYTRADE_DEV unset) it fails closed: no secret, a secret shorter than
// MinSecretBytes or the published DevSecret is a configuration error. In
// development an unset secret means DevSecret, and dev reports whether the
// process runs so, for its start-up warning. No error names the secret.
func ReadSecret(r *config.Reader) (secret []byte, dev bool) {
	dev = r.Flag("PAYTRADE_DEV")
	value := r.String("AUTH_JWT_SECRET", "")
	switch {
	case dev && value == "":
		return []byte(DevSecret), true
	case dev:
		return []byte(value), true
	case value == "":
		r.Fail(errors.New("AUTH_JWT_SECRET is not set: set a random secret of at least 32 bytes, or PAYTRADE_DEV=1 on a laptop"))
	case value == DevSecret:
		r.Fail(errors.New("AUTH_JWT_SECRET is the development secret, which is published: set a random one, or PAYTRADE_DEV=1 on a laptop"))
	case len(value) < MinSecretBytes:
		r.Fail(fmt.Errorf("AUTH_JWT_SECRET is %d bytes: want at least %d, or PAYTRADE_DEV=1 on a laptop", len(value), MinSecretBytes))
	}
	return []byte(value), false
}
