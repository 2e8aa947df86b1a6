package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHostileLoad runs the manager binary with the login server (HMAC
// and JWT forms) and sends 1,000 unauthenticated requests of about 1 MiB,
// 100 at a time: forged JWTs (a payload costly to decode, a garbage
// signature) and HMAC bodies with a wrong signature. It reports how many
// were refused and the manager's peak resident memory (VmHWM), against the
// Deployment's 256 MiB limit.
//
//	go test ./cmd/manager -run '^$' -bench HostileLoad -benchtime 1x
func BenchmarkHostileLoad(b *testing.B) {
	ns := newNamespace(b)
	createKeycloakMapping(b, ns)
	dir := b.TempDir()
	secretFile := filepath.Join(dir, "secrets")
	if err := os.WriteFile(secretFile, []byte("hostile-bench-secret-0123456789abcdef0123\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keysFile := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(keysFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		b.Fatal(err)
	}
	loginAddr := freeAddr(b)
	m := startManager(b, cfg.Host, nil, "--login-insecure", "--login-bind-address", loginAddr,
		"--login-hmac-secret-file", secretFile, "--login-jwt-keys-file", keysFile,
		"--login-jwt-issuer", "https://proxy.example.com", "--login-jwt-audience", "rolesync", "--login-rate-limit", "0")
	waitFor(b, 30*time.Second, m.logs, func() error { // the login server listens
		resp, err := http.Get("http://" + loginAddr + "/")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	})
	_, before := procMemory(b, m.Cmd.Process.Pid)

	// About 1 MiB each (the body cap), built to be expensive to decode.
	var payload strings.Builder
	payload.WriteString(`{"claims":{`)
	for i := 0; payload.Len() < 700<<10; i++ {
		fmt.Fprintf(&payload, `"k%d":[[[{"a":1,"b":[1,2]}]]],`, i)
	}
	payload.WriteString(`"z":1}}`)
	enc := base64.RawURLEncoding
	jwtBody := []byte(enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(payload.String())) + "." + enc.EncodeToString(make([]byte, 256)))
	hmacBody := []byte(`{"id":"x","time":"2026-01-01T00:00:00Z","userID":"u","issuer":"https://i.example.com","claims":` + payload.String()[len(`{"claims":`):len(payload.String())-1] + `}`)
	url := "http://" + loginAddr + "/v1/namespaces/" + ns + "/login-events"

	const total, concurrency = 1000, 100
	var next, refused, other atomic.Int64
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	b.ResetTimer()
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for i := next.Add(1); i <= total; i = next.Add(1) {
				body, ctype, hdr := jwtBody, "application/jwt", ""
				if i%2 == 0 {
					body, ctype, hdr = hmacBody, "application/json", fmt.Sprintf("t=%d,v1=%064x", time.Now().Unix(), i)
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", ctype)
				if hdr != "" {
					req.Header.Set("Rolesync-Signature", hdr)
				}
				resp, err := hc.Do(req)
				if err != nil {
					if other.Add(1) == 1 {
						b.Logf("first error: %v", err)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					refused.Add(1)
				} else if other.Add(1) == 1 {
					b.Logf("first unexpected answer: %d (%s)", resp.StatusCode, ctype)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	rss, peak := procMemory(b, m.Cmd.Process.Pid)
	b.ReportMetric(float64(refused.Load()), "refused-401")
	b.ReportMetric(float64(other.Load()), "other")
	b.ReportMetric(before, "MiB-peak-before")
	b.ReportMetric(peak, "MiB-peak-rss")
	b.ReportMetric(rss, "MiB-rss-after")
	b.ReportMetric(took.Seconds(), "s/1000-requests")
	if other.Load() != 0 {
		b.Fatalf("%d requests were not refused with 401", other.Load())
	}
}
