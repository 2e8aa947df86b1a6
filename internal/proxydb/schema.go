package proxydb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Column is one column of LiteLLM's schema rolesync reads or writes, with
// the PostgreSQL type (pg_type name, as information_schema.columns.udt_name
// says it) rolesync assumes.
type Column struct {
	Table, Name, Type string
	// Optional: rolesync works without it (the table is absent in older
	// releases, or the column is read through to_jsonb).
	Optional bool
}

func (c Column) String() string { return fmt.Sprintf("%q.%q (%s)", c.Table, c.Name, c.Type) }

// Columns is every column rolesync reads or writes on LiteLLM's schema
// (internal/testing/pgtest/litellm_schema.sql is LiteLLM's; a test holds
// this list to it). A database missing a required one is refused before
// anything is written.
var Columns = func() []Column {
	var cols []Column
	add := func(table string, optional bool, spec string) {
		for _, f := range strings.Fields(spec) {
			name, typ, _ := strings.Cut(f, ":")
			cols = append(cols, Column{Table: table, Name: name, Type: typ, Optional: optional})
		}
	}
	add("LiteLLM_UserTable", false, `user_id:text sso_user_id:text user_email:text user_role:text teams:_text models:_text
		metadata:jsonb spend:float8 model_spend:jsonb model_max_budget:jsonb allowed_cache_controls:_text policies:_text
		created_at:timestamp updated_at:timestamp`)
	add("LiteLLM_VerificationToken", false, `token:text user_id:text team_id:text blocked:bool metadata:jsonb updated_at:timestamp updated_by:text`)
	add("LiteLLM_DeletedVerificationToken", false, `id:text token:text deleted_at:timestamp`)
	add("LiteLLM_TeamTable", false, `team_id:text members_with_roles:jsonb members:_text admins:_text metadata:jsonb updated_at:timestamp`)
	add("LiteLLM_TeamMembership", false, `user_id:text team_id:text spend:float8 total_spend:float8 budget_id:text`)
	add("LiteLLM_BudgetTable", false, `budget_id:text max_budget:float8 soft_budget:float8 max_parallel_requests:int4 tpm_limit:int8
		rpm_limit:int8 model_max_budget:jsonb budget_duration:text allowed_models:_text budget_reset_at:timestamp
		created_at:timestamp created_by:text updated_at:timestamp updated_by:text`)
	add("LiteLLM_OrganizationMembership", false, `user_id:text`)
	add("LiteLLM_InvitationLink", false, `user_id:text created_by:text updated_by:text`)
	add("LiteLLM_AuditLog", true, `id:text updated_at:timestamp changed_by:text changed_by_api_key:text action:text table_name:text
		object_id:text before_value:jsonb updated_values:jsonb`)
	add("LiteLLM_SSOConfig", true, `sso_settings:jsonb`)
	add("LiteLLM_TeamTable", true, `default_team_member_models:_text`)
	return cols
}()

// SchemaReport is what a database holds of LiteLLM's schema.
type SchemaReport struct {
	// Migration is the newest LiteLLM migration applied ("_prisma_migrations",
	// the migrations LiteLLM's proxy runs at start), "" when unknown.
	Migration string
	// Missing are the columns of Columns the database lacks, or holds with
	// another type than rolesync assumes.
	Missing []Column
}

// Refused returns the error a write gets on this schema: nil when every
// required column is there with its type.
func (r SchemaReport) Refused() error {
	var missing []string
	for _, c := range r.Missing {
		if !c.Optional {
			missing = append(missing, c.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &SchemaError{Missing: missing, Migration: r.Migration}
}

// SchemaError refuses a database that lacks columns rolesync writes:
// nothing is written (rather than half a change).
type SchemaError struct {
	Missing   []string
	Migration string
}

func (e *SchemaError) Error() string {
	m := e.Migration
	if m == "" {
		m = "unknown"
	}
	return fmt.Sprintf("LiteLLM's schema (newest migration %s) lacks %s, which rolesync reads or writes: nothing is written until LiteLLM's migrations have run (upgrade the proxy)", m, strings.Join(e.Missing, ", "))
}

// Schema reads which of Columns the database has, with their types, and
// LiteLLM's newest applied migration.
func (d *DB) Schema(ctx context.Context) (SchemaReport, error) {
	var rep SchemaReport
	tables := make([]string, len(Columns))
	names := make([]string, len(Columns))
	for i, c := range Columns {
		tables[i], names[i] = c.Table, c.Name
	}
	rows, err := d.pool.Query(ctx, `SELECT x.t, x.c, COALESCE(col.udt_name::text, '')
		FROM unnest($1::text[], $2::text[]) AS x(t, c)
		LEFT JOIN information_schema.columns col ON col.table_schema = current_schema() AND col.table_name = x.t AND col.column_name = x.c`, tables, names)
	if err != nil {
		return rep, fmt.Errorf("proxydb: read LiteLLM's schema: %w", err)
	}
	found := map[[2]string]string{}
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			rows.Close()
			return rep, fmt.Errorf("proxydb: read LiteLLM's schema: %w", err)
		}
		found[[2]string{t, c}] = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("proxydb: read LiteLLM's schema: %w", err)
	}
	for _, c := range Columns {
		if found[[2]string{c.Table, c.Name}] != c.Type {
			rep.Missing = append(rep.Missing, c)
		}
	}
	err = d.pool.QueryRow(ctx, `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL
		ORDER BY migration_name DESC LIMIT 1`).Scan(&rep.Migration)
	if err != nil && !isUndefinedTable(err) && !errors.Is(err, pgx.ErrNoRows) {
		return rep, fmt.Errorf("proxydb: read LiteLLM's migrations: %w", err)
	}
	return rep, nil
}
