package login

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/testing/parallel"
)

// BenchmarkLoginEvents measures signed login events end to end (HTTP,
// HMAC, bounds, evaluation, ProxyUser creation) at concurrency 1, 8 and 32
// on a real apiserver, and in the same run a raw server-side-apply loop of
// the same ProxyUsers by a plain client at the same concurrency: the
// apiserver is the limit, so the ratio shows what the webhook's own work
// costs.
//
//	go test ./internal/login -run '^$' -bench LoginEvents -benchtime 1x
func BenchmarkLoginEvents(b *testing.B) {
	needSuite(b)
	for _, c := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) { benchLogin(b, c) })
	}
}

func benchLogin(b *testing.B, concurrency int) {
	const n = 600
	ns := newNamespace(b)
	withMapping(b, ns, strictMapping)
	claims := map[string]any{"groups": []any{"platform", "team-a", "team-b"}, "name": "Bench User", "email_verified": true}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i], _ = json.Marshal(inNS(ns, event(fmt.Sprintf("bench-%s-%d", ns, i), fmt.Sprintf("bench-user-%d", i), time.Now(), claims)))
	}

	b.ResetTimer()
	lat, took := runConcurrent(b, n, concurrency, func(i int) error {
		r := postSigned(b, ns, bodies[i], secrets[0], time.Time{})
		if r.status != http.StatusOK {
			return fmt.Errorf("event %d: %d %s", i, r.status, r.body)
		}
		return nil
	})
	b.StopTimer()

	// The same objects, applied directly.
	rawNS := newNamespace(b)
	rawClaims := map[string]any{"groups": claims["groups"], "name": claims["name"]} // what the server stores
	_, rawTook := runConcurrent(b, n, concurrency, func(i int) error {
		user := fmt.Sprintf("bench-user-%d", i)
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": rolesyncv1.GroupVersion.String(), "kind": "ProxyUser",
			"metadata": map[string]any{"name": proxyuser.Name(idpIssuer, user), "namespace": rawNS, "finalizers": []any{"rolesync.dev/proxy-user"}},
			"spec": map[string]any{"userID": user, "email": user + "@example.com", "issuer": idpIssuer,
				"lastLoginTime": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"), "claims": rawClaims},
		}}
		return k8sClient.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("bench-raw"), client.ForceOwnership)
	})

	slices.Sort(lat)
	rate := float64(n) / took.Seconds()
	rawRate := float64(n) / rawTook.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(rawRate, "raw-applies/s")
	b.ReportMetric(rate/rawRate, "x-raw-rate")
}

// runConcurrent runs op(0..n-1) on concurrency goroutines and returns
// each call's latency and the wall time.
func runConcurrent(b *testing.B, n, concurrency int, op func(int) error) ([]time.Duration, time.Duration) {
	b.Helper()
	lat, took, err := parallel.Timed(n, concurrency, op)
	if err != nil {
		b.Fatal(err)
	}
	return lat, took
}
