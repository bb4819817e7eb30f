// Package httpserver runs a service's HTTP server with the timeouts and
// graceful shutdown both services share.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/paytrade/paytrade/internal/config"
)

// Serve listens on addr, logs "<name> listening" with the bound address,
// and serves h until ctx ends or the server fails. It then stops taking
// connections and waits up to grace for requests in flight. It returns nil
// after a shutdown asked for by ctx, and the failure otherwise; either way
// HTTP has stopped, and the caller stops its background parts next.
func Serve(ctx context.Context, name, addr string, h http.Handler, log *slog.Logger, grace time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info(name+" listening", "addr", ln.Addr().String())

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-serveErr:
		log.Error("http server stopped", "err", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if shutdownErr := srv.Shutdown(shutdownCtx); shutdownErr != nil {
		log.Warn("http shutdown", "err", shutdownErr)
	}
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Probe asks the server listening on addr (":8086", "0.0.0.0:8086") for
// path on loopback and fails unless it answers 200: the container health
// check of an image that has no shell, curl or wget.
func Probe(ctx context.Context, addr, path string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("health check: listen address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", port)+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: GET %s answered %s", path, res.Status)
	}
	return nil
}

// HealthcheckArgs reads a service binary's arguments: none to serve, or
// just "healthcheck" to probe the running service (true); anything else is
// refused, because services are configured by environment alone.
func HealthcheckArgs(name string, args []string) (bool, error) {
	switch {
	case len(args) == 0:
		return false, nil
	case len(args) == 1 && args[0] == "healthcheck":
		return true, nil
	}
	return false, fmt.Errorf("%s takes no arguments but healthcheck, only environment variables (see README): got %q", name, args)
}

// ServeDebug serves net/http/pprof on addr, a listener of its own that the
// service's router never exposes, until ctx ends. An empty addr serves
// nothing: profiling is for whoever runs the process (make bench's
// profiles, an operator), opted into with PAY_DEBUG_ADDR or
// TRADE_DEBUG_ADDR, and never reachable through the service's own port.
func ServeDebug(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener on %s: %w", addr, err)
	}
	// Importing net/http/pprof also registers these on
	// http.DefaultServeMux; nothing here serves that mux, so only this
	// listener answers them.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Warn("pprof listening; profiles expose internals, keep this address private", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener stopped", "err", err)
		}
	}()
	return nil
}

// Loopback is addr bound to loopback only, for a process in development
// mode (PAYTRADE_DEV=1), whose published keys anyone can sign with: a
// missing host (":8086") becomes 127.0.0.1, a loopback host stays, and any
// other host is an error. "" (no listener) stays "".
func Loopback(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return addr, nil
	}
	return "", fmt.Errorf("listen address %q: development mode (PAYTRADE_DEV=1) listens on loopback only", addr)
}

// LoopbackOnly applies Loopback to each listen address, named by its
// setting, and fails r on any that is not loopback.
func LoopbackOnly(r *config.Reader, addrs map[string]*string) {
	for name, addr := range addrs {
		var err error
		if *addr, err = Loopback(*addr); err != nil {
			r.Fail(fmt.Errorf("%s: %w", name, err))
		}
	}
}
