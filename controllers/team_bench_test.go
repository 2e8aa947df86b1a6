package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxydb"
)

// BenchmarkTeamEditConvergence measures, in one run on a real apiserver
// and LiteLLM's schema, a RoleMapping edit that moves every user to
// another role, then an edit that adds every user to one team (LiteLLM
// keeps a team's members as one jsonb array: the controller group-commits
// them per team), and reports the team edit's time over the role edit's
// (goal: at most 2). Then a resync of the unchanged users: the team row
// and the ProxyUsers must not be written.
//
//	go test ./controllers -run '^$' -bench TeamEditConvergence -benchtime 1x
func BenchmarkTeamEditConvergence(b *testing.B) {
	needSuite(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) { benchTeams(b, n) })
	}
}

func benchTeams(b *testing.B, n int) {
	ctx := context.Background()
	bo := startBenchOperator(b, n, "t", func(d *proxydb.DB) UserStore { return d }, func(url string) {
		withConn(b, url, func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, `INSERT INTO "LiteLLM_TeamTable" (team_id, updated_at) VALUES ('bench-all', now())`)
			return err
		})
	})
	ns, rm, url, resync := bo.ns, bo.rm, bo.url, bo.resync

	timeEdit := func(edit func(*rolesyncv1.RoleMapping), done func(*rolesyncv1.ProxyUser) bool) time.Duration {
		var list rolesyncv1.ProxyUserList
		if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		w := watchUsers(b, ns, list.ResourceVersion)
		defer w.Stop()
		start := time.Now()
		patch := client.MergeFrom(rm.DeepCopy())
		edit(rm)
		if err := k8sClient.Patch(ctx, rm, patch); err != nil {
			b.Fatal(err)
		}
		return waitOnWatch(b, w, n, done).Sub(start)
	}
	b.ResetTimer()
	roleTook := timeEdit(func(rm *rolesyncv1.RoleMapping) { rm.Spec.Rules[2].Role = rolesyncv1.RoleProxyAdminViewer },
		func(pu *rolesyncv1.ProxyUser) bool { return settled(rolesyncv1.RoleProxyAdminViewer)(pu) == nil })
	teamTook := timeEdit(func(rm *rolesyncv1.RoleMapping) {
		rm.Spec.AllowedTeams = []string{"bench-*"}
		glob := "team-*"
		rm.Spec.Teams = []rolesyncv1.TeamRule{{ClaimMatcher: rolesyncv1.ClaimMatcher{Glob: &glob}, Team: "bench-all"}}
	}, func(pu *rolesyncv1.ProxyUser) bool {
		s, _ := teamsCondition(pu)
		return s == "True/TeamsSynced" && teamsOf(pu) == "bench-all=user"
	})
	b.StopTimer()
	if members := len(rosterOfB(b, url, "bench-all")); members != n {
		b.Fatalf("bench-all has %d members, want %d", members, n)
	}

	// A resync of the unchanged users writes neither the team nor a ProxyUser.
	teamVersion := func() string {
		var x string
		withConn(b, url, func(ctx context.Context, c *pgx.Conn) error {
			return c.QueryRow(ctx, `SELECT xmin::text FROM "LiteLLM_TeamTable" WHERE team_id = 'bench-all'`).Scan(&x)
		})
		return x
	}
	var list rolesyncv1.ProxyUserList
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	versions := make(map[string]string, n)
	for _, pu := range list.Items {
		versions[pu.Name] = pu.ResourceVersion
	}
	before := teamVersion()
	time.Sleep(resync * 12 / 10)
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	objWrites := 0
	for _, pu := range list.Items {
		if versions[pu.Name] != pu.ResourceVersion {
			objWrites++
		}
	}
	teamWrites := 0
	if teamVersion() != before {
		teamWrites = 1
	}
	b.ReportMetric(roleTook.Seconds(), "s/role-edit")
	b.ReportMetric(teamTook.Seconds(), "s/team-edit")
	b.ReportMetric(teamTook.Seconds()/roleTook.Seconds(), "x-role-edit")
	b.ReportMetric(float64(objWrites), "resync-object-writes")
	b.ReportMetric(float64(teamWrites), "resync-team-writes")
}

// rosterOfB is rosterOf for benchmarks.
func rosterOfB(b *testing.B, url, team string) map[string]string {
	b.Helper()
	out := map[string]string{}
	withConn(b, url, func(ctx context.Context, c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT m->>'user_id', m->>'role' FROM "LiteLLM_TeamTable", jsonb_array_elements(members_with_roles) m WHERE team_id = $1`, team)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u, r string
			if err := rows.Scan(&u, &r); err != nil {
				return err
			}
			out[u] = r
		}
		return rows.Err()
	})
	return out
}
