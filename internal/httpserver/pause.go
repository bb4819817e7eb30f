package httpserver

import (
	"net/http"
	"time"

	"github.com/paytrade/paytrade/internal/httpstatus"
)

// RefusedPause is how long a connection is left unread after a request on
// it was refused for its caller (401) or for coming too early (423, 429).
const RefusedPause = 250 * time.Millisecond

// PauseAfterRefusal answers every request at once, but after a refusal of
// the caller or of its timing it reads nothing more from that connection
// for RefusedPause. A client that waits as Retry-After says never notices;
// one that floods over keep-alive connections gets at most four answers a
// second per connection instead of as many as the CPU can give, so the
// cores stay with the requests that can be served. The pause holds a
// goroutine and nothing else: no pooled connection, no lock.
//
// A client that opens a new connection per request is not slowed by it;
// bounding connections per client address is the job of whatever is in
// front of the service.
func PauseAfterRefusal(next http.Handler) http.Handler {
	return PauseAfterRefusalFor(RefusedPause)(next)
}

// PauseAfterRefusalFor is PauseAfterRefusal with a pause of its own length.
func PauseAfterRefusalFor(pause time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return pauseAfterRefusal(next, pause)
	}
}

func pauseAfterRefusal(next http.Handler, pause time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := httpstatus.NewWriter(w)
		next.ServeHTTP(sw, r)
		switch sw.Status() {
		case http.StatusUnauthorized, http.StatusLocked, http.StatusTooManyRequests:
		default:
			return
		}
		// The answer is whole (jsonhttp sets its length): send it now, and
		// only then hold the connection.
		if err := http.NewResponseController(w).Flush(); err != nil {
			return
		}
		wait := time.NewTimer(pause)
		defer wait.Stop()
		select {
		case <-wait.C:
		case <-r.Context().Done():
		}
	})
}
