// Package peer is how one service calls the other over HTTP: as itself,
// with a short-lived service token for the other's audience, bounded in
// time and in what it reads, and telling "the peer could not be asked"
// apart from what the peer answered. Trade's client of pay and pay's client
// of trade are built on it.
package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/tracing"
)

const (
	// DefaultTimeout bounds one request when Config.Timeout is zero.
	DefaultTimeout = 3 * time.Second

	// A token lives briefly so a leaked one is soon useless, and is renewed
	// a minute early so it cannot expire in flight or by a little clock
	// skew between the services (the verifier allows no leeway).
	tokenTTL         = 5 * time.Minute
	tokenRenewBefore = time.Minute

	// maxAnswerBytes bounds what is read of an answer: the peers' are a few
	// kilobytes at most, so this only stops a broken peer from exhausting
	// memory.
	maxAnswerBytes = 1 << 20
)

// Endpoint is where the peer is, and the caller's key.
type Endpoint struct {
	BaseURL    string        // the peer's absolute http or https URL
	Signer     *auth.Signer  // the caller's own key
	Timeout    time.Duration // bound on one request, answer included; DefaultTimeout if zero
	HTTPClient *http.Client  // nil: a client with bounded connections that follows no redirects
}

// Config is how to reach the peer, and as whom.
type Config struct {
	Endpoint
	Name     string // the peer's name, for errors: "pay", "trade"
	Subject  string // the caller's name: its token's subject and User-Agent
	Audience string // the peer's audience (auth.AudiencePay, auth.AudienceTrade)
	// Unavailable is what an error of an unreachable peer also matches
	// with errors.Is, so the caller's domain can tell it apart without
	// importing this package.
	Unavailable error
}

// Client calls one peer as one service.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client
	// Now is the clock tokens are minted by.
	Now func() time.Time

	mu          sync.Mutex
	token       string
	tokenExpiry time.Time
}

// New returns a client of the peer at cfg.BaseURL.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.BaseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s client: base URL: %w", cfg.Name, err)
	case base.Scheme != "http" && base.Scheme != "https", base.Host == "":
		return nil, fmt.Errorf("%s client: base URL %q is not an absolute http or https URL", cfg.Name, cfg.BaseURL)
	case base.User != nil, base.RawQuery != "", base.Fragment != "":
		// Credentials in the URL would compete with the bearer token, and a
		// query or fragment would be lost when paths are joined to it.
		return nil, fmt.Errorf("%s client: base URL must have no user info, query or fragment", cfg.Name)
	case cfg.Signer == nil:
		return nil, fmt.Errorf("%s client: no signing key", cfg.Name)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("%s client: timeout %v is negative", cfg.Name, cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	c := &Client{cfg: cfg, base: base, http: cfg.HTTPClient, Now: time.Now}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	return c, nil
}

// defaultHTTPClient keeps enough idle connections for batches and caps open
// ones, so a slow peer is not also flooded.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		// Traced: the peer's spans join the trace of the request that called it.
		Transport: tracing.Transport(&http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          64,
			MaxIdleConnsPerHost:   16,
			MaxConnsPerHost:       64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
		}),
		// The peers never redirect: a 3xx means BaseURL points at something
		// else, which should be reported, not followed with our token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// URL is the peer's URL of the path elements.
func (c *Client) URL(elem ...string) *url.URL { return c.base.JoinPath(elem...) }

// Send sends a request with a JSON body (none if nil) as the caller and
// returns the peer's status and body.
func (c *Client) Send(ctx context.Context, method string, u *url.URL, body []byte) (int, []byte, error) {
	token, err := c.serviceToken()
	if err != nil {
		return 0, nil, err
	}
	reqCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var reqBody io.Reader = http.NoBody
	if body != nil {
		reqBody = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(reqCtx, method, u.String(), reqBody)
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "paytrade-"+c.cfg.Subject)
	if id := correlation.ID(ctx); id != "" {
		req.Header.Set(correlation.Header, id)
	}

	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, c.unreachable(ctx, err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
	if err != nil {
		// An answer cut short is no answer.
		return 0, nil, c.unreachable(ctx, fmt.Errorf("read answer to %s %s: %w", method, u.Path, err))
	}
	return res.StatusCode, answer, nil
}

// serviceToken returns the caller's service token for the peer, minting a
// new one when the cached one is about to expire.
func (c *Client) serviceToken() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.Now()
	if c.token != "" && c.tokenExpiry.Sub(now) >= tokenRenewBefore {
		return c.token, nil
	}
	token, err := c.cfg.Signer.Mint(auth.Service(c.cfg.Subject), []string{c.cfg.Audience}, tokenTTL, now)
	if err != nil {
		return "", err
	}
	c.token, c.tokenExpiry = token, now.Add(tokenTTL)
	return token, nil
}

// unavailableError is the peer not answering, or answering that it cannot
// serve now. It unwraps to Config.Unavailable.
type unavailableError struct {
	name string
	err  error
	is   error
}

func (e *unavailableError) Error() string   { return e.name + " unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, e.is} }

// unreachable classifies a failure to get an answer. The caller giving up
// says nothing about the peer, so a cancelled ctx is not unavailability; a
// timeout, ours or the caller's, is.
func (c *Client) unreachable(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return err
	}
	return &unavailableError{c.cfg.Name, err, c.cfg.Unavailable}
}

// Refusal is a peer's error body.
type Refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// RefusalOf returns the peer's error body, empty if body is not one.
func RefusalOf(body []byte) Refusal {
	var r Refusal
	_ = json.Unmarshal(body, &r)
	return r
}

// AnswerError describes an answer the caller does not expect, with the
// peer's code and message when it sent them; 502, 503 and 504 also match
// Config.Unavailable: worth trying again later.
func (c *Client) AnswerError(status int, body []byte) error {
	var err error
	if r := RefusalOf(body); r.Code != "" {
		err = fmt.Errorf("%s answered %d %s: %s", c.cfg.Name, status, r.Code, r.Message)
	} else {
		const maxQuoted = 200
		if len(body) > maxQuoted {
			body = body[:maxQuoted]
		}
		err = fmt.Errorf("%s answered %d: %q", c.cfg.Name, status, body)
	}
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &unavailableError{c.cfg.Name, err, c.cfg.Unavailable}
	}
	return err
}
