package proxydb

import (
	"context"
	"fmt"
	"testing"

	"github.com/rolesync/rolesync/internal/testing/parallel"
)

// BenchmarkApplyMove moves every row of a LiteLLM user table to another
// role with DB.Apply (the statement a mapping edit runs per user: row
// lock, role update, key block check, audit row) and, in the same
// iteration on the same rows, with a plain UPDATE at the same concurrency:
// x-raw-update is Apply's time over the plain loop's.
func BenchmarkApplyMove(b *testing.B) {
	const rows, concurrency = 5000, 16
	ctx := context.Background()
	db, raw := newDBWithPool(b, concurrency)
	if _, err := raw.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role, teams)
		SELECT 'u' || i, 'internal_user', '{}' FROM generate_series(1, $1) i`, rows); err != nil {
		b.Fatal(err)
	}
	roles := []string{"proxy_admin_viewer", "internal_user"}
	var applied, plain float64
	for i := range b.N {
		role := roles[i%2]
		_, took, err := parallel.Timed(rows, concurrency, func(j int) error {
			_, err := db.pool.Exec(ctx, `UPDATE "LiteLLM_UserTable" SET user_role = $2, updated_at = now() WHERE user_id = $1`, fmt.Sprint("u", j+1), role)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		plain += took.Seconds()
		role = roles[(i+1)%2]
		_, took, err = parallel.Timed(rows, concurrency, func(j int) error {
			o, err := db.Apply(ctx, Change{RowUserID: fmt.Sprint("u", j+1), Role: role, Keys: KeysUnblock, Activation: ActivationRestore, Reason: "staff#0 groups=staff", Object: "ns/u"})
			if err == nil && !o.RoleChanged {
				err = fmt.Errorf("row u%d: role not changed", j+1)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		applied += took.Seconds()
	}
	b.ReportMetric(plain*1e3/float64(b.N*rows), "ms/plain-update")
	b.ReportMetric(applied*1e3/float64(b.N*rows), "ms/apply")
	b.ReportMetric(applied/plain, "x-raw-update")
}
