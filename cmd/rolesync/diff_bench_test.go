package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// writeReviewFiles writes a base and a proposed RoleMapping of rules rules
// each (the proposal moves every tenth rule to another role) and an export
// of users ProxyUsers (kubectl get proxyusers -o json, or yaml).
func writeReviewFiles(b *testing.B, dir string, users, rules int, format string) (base, proposed, export string) {
	b.Helper()
	mapping := func(shift bool) string {
		var sb strings.Builder
		sb.WriteString("apiVersion: rolesync.dev/v1\nkind: RoleMapping\nmetadata: {name: groups, namespace: bench}\nspec:\n  claim: groups\n  onNoMatch: Deny\n  rules:\n")
		roles := []string{"internal_user_viewer", "internal_user", "proxy_admin_viewer"}
		for i := range rules {
			role := roles[i%len(roles)]
			if shift && i%10 == 0 {
				role = roles[(i+1)%len(roles)]
			}
			fmt.Fprintf(&sb, "  - {equals: group-%04d, role: %s}\n", i, role)
		}
		return sb.String()
	}
	items := make([]map[string]any, users)
	for i := range items {
		items[i] = map[string]any{
			"apiVersion": "rolesync.dev/v1", "kind": "ProxyUser",
			"metadata": map[string]any{"name": fmt.Sprintf("user-%05d", i), "namespace": "bench"},
			"spec": map[string]any{"userID": fmt.Sprintf("user-%05d", i), "issuer": "https://kc.example.com/realms/ai",
				"claims": map[string]any{"groups": []string{fmt.Sprintf("group-%04d", i%rules), fmt.Sprintf("other-%d", i%7)}}},
		}
	}
	list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
	var data []byte
	var err error
	if format == "yaml" {
		data, err = yaml.Marshal(list)
	} else {
		data, err = json.Marshal(list)
	}
	if err != nil {
		b.Fatal(err)
	}
	base, proposed, export = filepath.Join(dir, "base.yaml"), filepath.Join(dir, "proposed.yaml"), filepath.Join(dir, "users."+format)
	for path, content := range map[string][]byte{base: []byte(mapping(false)), proposed: []byte(mapping(true)), export: data} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return base, proposed, export
}

// BenchmarkDiffFromFiles: rolesync diff over 10,000 users and 1,000 rules
// from files, end to end (reading and compiling the mappings, decoding the
// export, deciding every user twice), next to the baseline of a plain
// json.Unmarshal of the same export into untyped values.
//
//	go test ./cmd/rolesync -run '^$' -bench DiffFromFiles -benchtime 5x
func BenchmarkDiffFromFiles(b *testing.B) {
	for _, format := range []string{"json", "yaml"} {
		b.Run("export="+format, func(b *testing.B) {
			base, proposed, export := writeReviewFiles(b, b.TempDir(), 10000, 1000, format)
			o := diffOptions{base: stringList{base}, proposed: stringList{proposed}, usersFile: export}
			b.ResetTimer()
			for range b.N {
				r, err := o.run(context.Background(), io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if r.Users != 10000 || len(r.Changes) != 1000 {
					b.Fatalf("users %d changes %d, want 10000 and 1000", r.Users, len(r.Changes))
				}
			}
			b.StopTimer()
			if format != "json" {
				return
			}
			data, err := os.ReadFile(export)
			if err != nil {
				b.Fatal(err)
			}
			// The baseline, timed the same way (testing.Benchmark cannot
			// run inside a benchmark).
			var raw any
			start := time.Now()
			for range b.N {
				if err := json.Unmarshal(data, &raw); err != nil {
					b.Fatal(err)
				}
			}
			plain := time.Since(start)
			b.ReportMetric(float64(b.Elapsed())/float64(plain), "x-plain-json-decode")
		})
	}
}
