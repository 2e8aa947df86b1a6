package login

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed tls.crt/tls.key for 127.0.0.1 with serial.
func writeCert(t *testing.T, dir string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "rolesync-login"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	// Write the key first, then the cert, each atomically, as a Secret volume update would.
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"tls.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})},
		{"tls.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})},
	} {
		tmp := filepath.Join(dir, "."+f.name)
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTLSCertificateIsReloaded serves over TLS from a cert dir and swaps
// the certificate: new connections get the new one without a restart.
func TestTLSCertificateIsReloaded(t *testing.T) {
	needSuite(t)
	dir := t.TempDir()
	writeCert(t, dir, 1)
	s, err := NewServer(Options{BindAddress: "127.0.0.1:0", CertDir: dir, HMACSecretFile: secretFile},
		srv.client, srv.apiReader, registry, nil, srv.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("TLS server: %v", err)
		}
	})
	addr, err := s.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	served := func() (int64, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test reads the served certificate
		if err != nil {
			return 0, err
		}
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if got, err := served(); err != nil || got != 1 {
		t.Fatalf("serial %d, %v; want 1", got, err)
	}
	writeCert(t, dir, 2)
	waitUntil(t, 30*time.Second, func() error {
		got, err := served()
		if err == nil && got != 2 {
			err = fmt.Errorf("still serving serial %d", got)
		}
		return err
	})
}
