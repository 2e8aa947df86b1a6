package scim

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

const benchMapping = `metadata: {name: directory}
spec:
  claim: groups
  onNoMatch: Deny
  rules:
  - {equals: Members, role: internal_user}
`

// BenchmarkSCIMMembershipRemoval measures, on the suite's real apiserver
// and LiteLLM schema:
//   - latency: 100 members of a group are removed one PATCH at a time; for
//     each, the time from the SCIM answer until the LiteLLM row holds the
//     demoted role (p50, p99, max);
//   - scale: one PATCH removes all 10,000 members of a group; the time until
//     every row is demoted, against the raw write limit measured in the
//     same run: the same number of ProxyUser spec patches (the SCIM
//     server's writes) and status patches (the controller's) by a plain
//     client with the same concurrency, and the same number of single-row
//     UPDATEs.
//
// Run: go test ./internal/scim -run '^$' -bench SCIMMembershipRemoval -benchtime 1x.
func BenchmarkSCIMMembershipRemoval(b *testing.B) {
	needSuite(b)
	b.Run("latency/users=100", func(b *testing.B) { benchRemovalLatency(b, "scim-bench-a", 100) })
	b.Run("scale/users=10000", func(b *testing.B) { benchRemovalScale(b, "scim-bench-b", 10000) })
}

func benchRemovalLatency(b *testing.B, ns string, n int) {
	withMapping(b, ns, benchMapping)
	ids := make([]string, n)
	members := make([]any, n)
	for i := range n {
		user := fmt.Sprintf("lat-%03d@example.com", i)
		ids[i] = call(b, http.MethodPost, ns, "/Users", oktaUser(user, fmt.Sprintf("lat%03d", i))).must(b, "create", http.StatusCreated).str("id")
		members[i] = map[string]any{"value": ids[i]}
	}
	sqlExec(b, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, updated_at)
		SELECT 'lat-' || lpad(g::text, 3, '0') || '@example.com', 'internal_user_viewer', now() FROM generate_series(0, $1 - 1) g`, n)
	gid := call(b, http.MethodPost, ns, "/Groups", map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "Members", "members": members}).must(b, "group", http.StatusCreated).str("id")
	waitRoles(b, "lat-%", n, "internal_user", 2*time.Minute)

	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	b.ResetTimer()
	var lat []time.Duration
	for i, id := range ids {
		r := call(b, http.MethodPatch, ns, "/Groups/"+gid, patchOps(map[string]any{"op": "remove", "path": `members[value eq "` + id + `"]`}))
		r.must(b, "remove", http.StatusOK, http.StatusNoContent)
		user := fmt.Sprintf("lat-%03d@example.com", i)
		for {
			var role string
			if err := conn.QueryRow(context.Background(), `SELECT user_role FROM "LiteLLM_UserTable" WHERE user_id = $1`, user).Scan(&role); err != nil {
				b.Fatal(err)
			}
			if role == "internal_user_viewer" {
				lat = append(lat, time.Since(r.took))
				break
			}
			if time.Since(r.took) > time.Minute {
				b.Fatalf("%s still %s a minute after its removal", user, role)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(q(0.50).Seconds()*1000, "p50-ms")
	b.ReportMetric(q(0.99).Seconds()*1000, "p99-ms")
	b.ReportMetric(lat[len(lat)-1].Seconds()*1000, "max-ms")
	b.Logf("membership removal to LiteLLM row, %d users: p50 %v, p99 %v, max %v", n, q(0.5), q(0.99), lat[len(lat)-1])
}

// waitRoles waits until n rows whose user_id is LIKE pattern hold role.
func waitRoles(b testing.TB, pattern string, n int, role string, timeout time.Duration) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	eventually(b, timeout, func() error {
		var got int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id LIKE $1 AND user_role = $2`, pattern, role).Scan(&got); err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%d of %d rows hold %s", got, n, role)
		}
		return nil
	})
}

func benchRemovalScale(b *testing.B, ns string, n int) {
	ctx := context.Background()
	withMapping(b, ns, benchMapping)
	g := &rolesyncv1.DirectoryGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dg-bulk"}, Spec: rolesyncv1.DirectoryGroupSpec{DisplayName: "Members"}}
	if err := k8sClient.Create(ctx, g); err != nil {
		b.Fatal(err)
	}
	// n directory users in the group, as n SCIM creates and one member add
	// leave them (made directly: the setup is not what is measured).
	now := metav1.NewMicroTime(time.Now())
	user := func(i int) string { return fmt.Sprintf("bulk-%05d@example.com", i) }
	var eg errgroup.Group
	eg.SetLimit(16)
	for i := range n {
		eg.Go(func() error {
			pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: proxyuser.Name(entraIssuer, user(i)), Finalizers: []string{proxyuser.Finalizer}},
				Spec: rolesyncv1.ProxyUserSpec{UserID: user(i), Issuer: entraIssuer, Email: user(i), Directory: &rolesyncv1.DirectoryUser{UserName: user(i), Active: true,
					GroupsManaged: true, Groups: []rolesyncv1.DirectoryGroupRef{{ID: g.Name, DisplayName: "Members"}}, UpdatedAt: &now}}}
			return k8sClient.Create(ctx, pu)
		})
	}
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
	sqlExec(b, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, updated_at)
		SELECT 'bulk-' || lpad(g::text, 5, '0') || '@example.com', 'internal_user_viewer', now() FROM generate_series(0, $1 - 1) g`, n)
	waitRoles(b, "bulk-%", n, "internal_user", 10*time.Minute)

	// The raw limit: the same writes by a plain client, same concurrency.
	var list rolesyncv1.ProxyUserList
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	const workers = 16 // the SCIM server's default Workers
	rawStart := time.Now()
	var rawSpec, rawStatus atomic.Int64
	var raw errgroup.Group
	raw.SetLimit(workers)
	for i := range list.Items {
		raw.Go(func() error {
			pu := list.Items[i].DeepCopy()
			base := pu.DeepCopy()
			pu.Spec.Directory.DisplayName = "raw"
			if err := k8sClient.Patch(ctx, pu, client.MergeFrom(base)); err != nil {
				return err
			}
			rawSpec.Add(1)
			sbase := pu.DeepCopy()
			pu.Status.LastSyncTime = &metav1.Time{Time: time.Now()}
			if err := k8sClient.Status().Patch(ctx, pu, client.MergeFrom(sbase)); err != nil {
				return err
			}
			rawStatus.Add(1)
			return nil
		})
	}
	if err := raw.Wait(); err != nil {
		b.Fatal(err)
	}
	rawAPI := time.Since(rawStart)
	rawSQLStart := time.Now()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := conn.Exec(ctx, `UPDATE "LiteLLM_UserTable" SET updated_at = now() WHERE user_id = $1`, user(i)); err != nil {
			b.Fatal(err)
		}
	}
	_ = conn.Close(ctx)
	rawSQL := time.Since(rawSQLStart)
	// Let the controller settle what the raw loop touched (no role changes).
	time.Sleep(5 * time.Second)

	b.ResetTimer()
	start := time.Now()
	r := call(b, http.MethodPatch, ns, "/Groups/"+g.Name, patchOps(map[string]any{"op": "remove", "path": "members"}))
	r.must(b, "remove every member", http.StatusOK, http.StatusNoContent)
	answered := time.Since(start)
	waitRoles(b, "bulk-%", n, "internal_user_viewer", 20*time.Minute)
	took := time.Since(start)
	b.StopTimer()
	limit := rawAPI + rawSQL
	b.ReportMetric(took.Seconds(), "operator-s")
	b.ReportMetric(rawAPI.Seconds(), "raw-apiserver-s")
	b.ReportMetric(rawSQL.Seconds(), "raw-sql-s")
	b.ReportMetric(took.Seconds()/limit.Seconds(), "operator/raw")
	b.Logf("removing %d members: SCIM answered in %v, every row demoted after %v; raw limit %v (%d spec + %d status patches %v, %d UPDATEs %v): ratio %.2f",
		n, answered.Round(time.Millisecond), took.Round(time.Millisecond), limit.Round(time.Millisecond), rawSpec.Load(), rawStatus.Load(),
		rawAPI.Round(time.Millisecond), n, rawSQL.Round(time.Millisecond), took.Seconds()/limit.Seconds())
}
