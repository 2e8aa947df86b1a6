package proxydb

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Every column rolesync reads or writes is in LiteLLM's schema (as its
// migrations create it, internal/testing/pgtest) with the type rolesync
// assumes.
func TestLiteLLMSchemaHasEveryColumnRolesyncUses(t *testing.T) {
	db, raw := newDB(t)
	rep, err := db.Schema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Missing) != 0 {
		t.Fatalf("LiteLLM's schema lacks %v", rep.Missing)
	}
	// The newest applied migration is read from LiteLLM's migrations table.
	exec(t, raw, `CREATE TABLE "_prisma_migrations" (id text PRIMARY KEY, migration_name text NOT NULL, finished_at timestamptz, rolled_back_at timestamptz)`)
	exec(t, raw, `INSERT INTO "_prisma_migrations" VALUES ('1', '20260108_add_user_email_lower_idx', now(), NULL), ('2', '20260213105436_add_managed_vector_store_table', now(), NULL), ('3', '20991231_rolled_back', now(), now())`)
	if rep, err := db.Schema(context.Background()); err != nil || rep.Migration != "20260213105436_add_managed_vector_store_table" {
		t.Fatalf("migration %q %v", rep.Migration, err)
	}
}

// A schema without a column rolesync writes refuses every write with an
// error naming it, writes nothing, and writes again once the column is back.
func TestSchemaMissingAColumnIsRefused(t *testing.T) {
	db, raw := newDB(t)
	ctx := context.Background()
	exec(t, raw, `INSERT INTO "LiteLLM_UserTable" (user_id, user_role) VALUES ('kai', 'internal_user')`)
	exec(t, raw, `ALTER TABLE "LiteLLM_VerificationToken" RENAME COLUMN updated_by TO updated_by_old`)
	_, err := db.Apply(ctx, Change{RowUserID: "kai", Role: "proxy_admin", Keys: KeysUnblock})
	var schemaErr *SchemaError
	if !errors.As(err, &schemaErr) || !strings.Contains(err.Error(), `"LiteLLM_VerificationToken"."updated_by"`) {
		t.Fatalf("want a SchemaError naming the column, got %v", err)
	}
	if n := count(t, raw, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = 'kai' AND user_role = 'internal_user'`); n != 1 {
		t.Fatal("the row was written on a refused schema")
	}
	exec(t, raw, `ALTER TABLE "LiteLLM_VerificationToken" RENAME COLUMN updated_by_old TO updated_by`)
	if o, err := db.Apply(ctx, Change{RowUserID: "kai", Role: "proxy_admin", Keys: KeysUnblock}); err != nil || !o.RoleChanged {
		t.Fatalf("after the migration: %+v %v", o, err)
	}
}
