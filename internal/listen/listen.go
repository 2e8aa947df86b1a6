// Package listen serves an HTTP handler the way rolesync's own servers (the
// login server, the SCIM provider) do: a bounded number of connections, TLS
// from a certificate directory reloaded when it changes (or plain HTTP for
// local use, logged as a warning), the bound address published once
// listening, and a graceful shutdown when the context ends.
package listen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/net/netutil"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// Options say where and how to serve.
type Options struct {
	// Name names the server in errors and logs ("login server", "SCIM").
	Name        string
	BindAddress string
	// CertDir holds tls.crt and tls.key; Insecure serves plain HTTP instead.
	CertDir  string
	Insecure bool
	// InsecureFlag is the flag that turned TLS off, for the warning.
	InsecureFlag string
	// MaxConnections bounds open connections (more wait in the kernel's
	// accept queue).
	MaxConnections int
	Log            logr.Logger
	// Addr receives the bound address once listening (buffered, size 1).
	Addr chan string
}

// Serve serves srv (its Handler and timeouts set) until ctx ends, then
// shuts it down, waiting up to 10 seconds for requests in flight.
func Serve(ctx context.Context, srv *http.Server, o Options) error {
	ln, err := net.Listen("tcp", o.BindAddress)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", o.Name, o.BindAddress, err)
	}
	ln = netutil.LimitListener(ln, o.MaxConnections)
	if o.Insecure {
		o.Log.Info("WARNING: the "+o.Name+" serves plain HTTP ("+o.InsecureFlag+"); use it only on localhost", "address", ln.Addr().String())
	} else {
		w, err := certwatcher.New(filepath.Join(o.CertDir, "tls.crt"), filepath.Join(o.CertDir, "tls.key"))
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("%s: certificate: %w", o.Name, err)
		}
		go func() {
			if err := w.Start(ctx); err != nil {
				o.Log.Error(err, "Certificate watcher stopped")
			}
		}()
		ln = tls.NewListener(ln, &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12})
		o.Log.Info("Serving the "+o.Name+" over TLS", "address", ln.Addr().String(), "certDir", o.CertDir)
	}
	o.Addr <- ln.Addr().String()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		return err
	}
}

// WaitAddr returns the address published on addr, once there is one.
func WaitAddr(ctx context.Context, addr chan string) (string, error) {
	select {
	case a := <-addr:
		addr <- a
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
