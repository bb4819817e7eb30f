package systest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Client speaks the services' JSON API with bearer tokens.
type Client struct {
	HTTP *http.Client
}

// NewClient returns a client that keeps up to conns idle connections per
// service, so that a load of that concurrency does not measure handshakes,
// and gives up on a request after timeout.
func NewClient(conns int, timeout time.Duration) *Client {
	return &Client{HTTP: &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{MaxIdleConns: 2 * conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute},
	}}
}

// Send sends body (JSON, may be empty) with token and the extra headers,
// and returns the status and the answer's body.
func (c *Client) Send(ctx context.Context, method, url, token, body string, header http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	return res.StatusCode, data, nil
}

// Call sends a JSON request and decodes the answer into out (if not nil);
// any status but want is an error.
func (c *Client) Call(method, url, token, body string, want int, out any) error {
	status, data, err := c.Send(context.Background(), method, url, token, body, nil)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: %d %s, want %d", method, url, status, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode %s: %w", method, url, data, err)
		}
	}
	return nil
}

// MustCall is Call that fails the test on any error.
func (c *Client) MustCall(tb testing.TB, method, url, token, body string, want int, out any) {
	tb.Helper()
	if err := c.Call(method, url, token, body, want, out); err != nil {
		tb.Fatal(err)
	}
}

// Parallel runs fn(0..n-1) on workers goroutines and returns the first
// error; a worker stops at its first error, the others go on.
func Parallel(workers, n int, fn func(i int) error) error {
	var (
		next     atomic.Int64
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}
