package main

import (
	"context"
	"encoding/pem"
	"flag"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// acceptEncoding returns the Accept-Encoding a client made with the
// manager's flags sends to the Kubernetes API.
func acceptEncoding(t *testing.T, args ...string) string {
	t.Helper()
	var o managerOptions
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen string
	)
	// TLS, as every apiserver serves (client-go applies the setting to
	// the transports it builds for TLS; plain HTTP gets Go's default).
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Get("Accept-Encoding")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x"}}`))
	}))
	defer api.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	cfg := &rest.Config{Host: api.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	o.configureClient(cfg)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "x", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return seen
}

// TestManagerDoesNotAskForGzipByDefault: the manager's API client sends no
// Accept-Encoding: gzip unless --kube-api-compression asks for it (the
// apiserver then compresses every watch event it sends).
func TestManagerDoesNotAskForGzipByDefault(t *testing.T) {
	if got := acceptEncoding(t); got != "" {
		t.Fatalf("default flags: Accept-Encoding %q, want none", got)
	}
	if got := acceptEncoding(t, "--kube-api-compression"); got != "gzip" {
		t.Fatalf("--kube-api-compression: Accept-Encoding %q, want gzip", got)
	}
}

// TestManagerClientBudgetFromFlags: --kube-api-qps and --kube-api-burst
// reach the client configuration.
func TestManagerClientBudgetFromFlags(t *testing.T) {
	var o managerOptions
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse([]string{"--kube-api-qps=70", "--kube-api-burst=140"}); err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{}
	o.configureClient(cfg)
	if cfg.QPS != 70 || cfg.Burst != 140 {
		t.Fatalf("QPS %v burst %d, want 70 and 140", cfg.QPS, cfg.Burst)
	}
}
