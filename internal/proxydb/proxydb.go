// Package proxydb governs the rows of LiteLLM's PostgreSQL database that
// belong to a proxy user: the row in "LiteLLM_UserTable" that LiteLLM itself
// reads for an SSO user (found in LiteLLM's own order), that user's virtual
// keys, memberships and invitations, and LiteLLM's audit log.
//
// Every change is one statement or one transaction that writes LiteLLM's
// audit log row with it, and a statement that would change nothing writes
// nothing (no new row version). The schema it expects is LiteLLM's own (see
// internal/testing/pgtest/litellm_schema.sql); it names every column it
// writes, because newer LiteLLM releases add columns.
package proxydb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rolesync/rolesync/internal/emailaddr"
)

// ChangedBy is the changed_by of every audit log row rolesync writes.
const ChangedBy = "rolesync"

// UnmanagedRoles are LiteLLM roles rolesync never grants and never
// overwrites: a row holding one was set by someone else.
var UnmanagedRoles = []string{"org_admin", "team", "customer"}

// Managed reports whether rolesync may overwrite a row holding role
// (NULL and unknown roles, which LiteLLM treats as internal_user, included).
func Managed(role string) bool { return !slices.Contains(UnmanagedRoles, role) }

// DB is a pool of connections to the proxy's database.
type DB struct {
	pool *pgxpool.Pool

	mu    sync.Mutex
	stmts *statements // built once the database said whether it has an audit log
}

// Open prepares a pool for dsn. It does not connect: the operator starts,
// and reports Synced=False, while the database is down. Whether LiteLLM's
// audit log table exists is found out at the first statement.
func Open(ctx context.Context, dsn string, maxConns int32) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included: never pass it on.
		return nil, errors.New("proxydb: the database URL cannot be parsed")
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("proxydb: create pool: %w", err)
	}
	return &DB{pool: pool}, nil
}

// statements returns the write statements for this database: with audit
// log rows when "LiteLLM_AuditLog" exists, and copying deleted keys with
// every column LiteLLM's two key tables share (asked once). A schema that
// lacks a column rolesync writes is refused (*SchemaError) and asked again
// at the next write, so the writes resume once LiteLLM's migrations ran.
func (d *DB) statements(ctx context.Context) (*statements, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stmts == nil {
		rep, err := d.Schema(ctx)
		if err != nil {
			return nil, err
		}
		if err := rep.Refused(); err != nil {
			return nil, err
		}
		var audit bool
		var keyCols, deletedCols []string
		err = d.pool.QueryRow(ctx, `SELECT to_regclass('"LiteLLM_AuditLog"') IS NOT NULL,
			COALESCE((SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns
				WHERE table_schema = current_schema() AND table_name = 'LiteLLM_VerificationToken'), '{}'),
			COALESCE((SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns
				WHERE table_schema = current_schema() AND table_name = 'LiteLLM_DeletedVerificationToken'), '{}')`).
			Scan(&audit, &keyCols, &deletedCols)
		if err != nil {
			return nil, err
		}
		for _, c := range rep.Missing {
			audit = audit && c.Table != "LiteLLM_AuditLog" // an audit log without LiteLLM's columns is not written
		}
		s := buildStatements(audit)
		s.copyKeys, s.copyErr = buildKeyCopy(keyCols, deletedCols)
		d.stmts = &s
	}
	return d.stmts, nil
}

// Close closes the pool.
func (d *DB) Close() { d.pool.Close() }

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// Row is the part of a LiteLLM user row rolesync reads.
type Row struct {
	UserID    string // the row's key (a UUID for invited users)
	SSOUserID string // "" when NULL
	Email     string // "" when NULL
	Role      string // "" when NULL
	// Inactive: metadata.scim_active is false, so LiteLLM's key
	// authentication refuses the user (by rolesync or by LiteLLM's SCIM).
	Inactive bool
}

// AmbiguousError means several rows could be the user's (by email): rolesync
// writes none of them.
type AmbiguousError struct {
	Email string
	Rows  []string // their user_ids
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("rows %s all have the email %s and none has the user's id as user_id or sso_user_id", strings.Join(e.Rows, ", "), e.Email)
}

// DeleteBlockedError means a row of another table still references the
// user, so the user cannot be deleted.
type DeleteBlockedError struct {
	Table      string
	Constraint string
	UserID     string
}

func (e *DeleteBlockedError) Error() string {
	return fmt.Sprintf("rows of %q still reference user %s (foreign key %s)", e.Table, e.UserID, e.Constraint)
}

// findSQL reads the rows that could be the user's: by SSO id, or by an
// email equal to the user's after lower-casing ASCII letters only
// (emailaddr). lower() narrows the search through LiteLLM's
// user_email_lower_idx; translate() is the exact rule, since lower() in a
// UTF-8 locale folds look-alikes (the Kelvin sign) into ASCII. Pick orders
// them as LiteLLM does.
const findSQL = `SELECT user_id, COALESCE(sso_user_id, ''), COALESCE(user_email, ''), COALESCE(user_role, ''),
	COALESCE(metadata->'scim_active' = 'false'::jsonb, false)
FROM "LiteLLM_UserTable"
WHERE user_id = $1 OR sso_user_id = $1
   OR ($2 <> '' AND lower(user_email) = lower($2) AND translate(user_email, '` + emailaddr.SQLUpper + `', '` + emailaddr.SQLLower + `') = $3)
LIMIT 16`

// Find returns the row LiteLLM uses for the SSO user id (and email): see
// Pick. found is false when there is none.
func (d *DB) Find(ctx context.Context, userID, email string) (row Row, found bool, err error) {
	defer func(start time.Time) { observe("find", start, err) }(time.Now())
	rows, err := d.pool.Query(ctx, findSQL, userID, email, emailaddr.Fold(email))
	if err != nil {
		return Row{}, false, fmt.Errorf("proxydb: find user %s: %w", userID, err)
	}
	var candidates []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.UserID, &r.SSOUserID, &r.Email, &r.Role, &r.Inactive); err != nil {
			rows.Close()
			return Row{}, false, fmt.Errorf("proxydb: find user %s: %w", userID, err)
		}
		candidates = append(candidates, r)
	}
	if err := rows.Err(); err != nil {
		return Row{}, false, fmt.Errorf("proxydb: find user %s: %w", userID, err)
	}
	return Pick(candidates, userID, email)
}

// Pick chooses among candidate rows in LiteLLM's order for an SSO login:
// the row whose user_id is the id, else the row whose sso_user_id is it,
// else the one row whose email equals email case-insensitively. Several
// rows by email is an *AmbiguousError (LiteLLM would take whichever comes
// first).
func Pick(candidates []Row, userID, email string) (Row, bool, error) {
	for _, r := range candidates {
		if r.UserID == userID {
			return r, true, nil
		}
	}
	for _, r := range candidates {
		if r.SSOUserID == userID {
			return r, true, nil
		}
	}
	if email == "" {
		return Row{}, false, nil
	}
	var byEmail []Row
	for _, r := range candidates {
		if emailaddr.Equal(r.Email, email) {
			byEmail = append(byEmail, r)
		}
	}
	switch len(byEmail) {
	case 0:
		return Row{}, false, nil
	case 1:
		return byEmail[0], true, nil
	}
	ids := make([]string, len(byEmail))
	for i, r := range byEmail {
		ids[i] = r.UserID
	}
	slices.Sort(ids)
	return Row{}, false, &AmbiguousError{Email: email, Rows: ids}
}

// Keys says what a write does to the user's virtual keys.
type Keys int

const (
	// KeysUnblock unblocks the keys rolesync blocked (and only those).
	KeysUnblock Keys = iota
	// KeysBlock blocks every key of the user that is not blocked yet,
	// marking them as blocked by rolesync.
	KeysBlock
	// KeysLeave leaves the keys alone.
	KeysLeave
	// KeysLiftDeprovisioned lifts only the deprovisioning's block (a user
	// the directory reactivated who is still denied, with key revocation
	// off): the role's block, if any, stays.
	KeysLiftDeprovisioned
)

// Activation says what a write does to the user's LiteLLM activation
// (metadata.scim_active, which LiteLLM's key authentication checks).
type Activation int

const (
	// ActivationRestore lifts a deactivation rolesync made (and only
	// that: a user LiteLLM's SCIM deactivated stays deactivated).
	ActivationRestore Activation = iota
	// ActivationDeactivate sets metadata.scim_active = false, as LiteLLM's
	// SCIM does for active=false, recording it as rolesync's
	// (metadata.rolesync_deactivated, with the value it replaced).
	ActivationDeactivate
	// ActivationLeave leaves it alone.
	ActivationLeave
)

// Change is one role write to a bound row.
type Change struct {
	RowUserID string // the bound row's user_id
	Role      string
	Keys      Keys
	// Activation deactivates a denied user in LiteLLM, or lifts it.
	Activation Activation
	// Reason is the decision's source, recorded in the audit log
	// (for example "keycloak#0 groups=admins" or "deletionPolicy Downgrade").
	Reason string
	// Object names the ProxyUser, for the audit log.
	Object string
	// Deprovisioned: the directory deprovisioned the user; KeysBlock then
	// blocks with the reason "deprovisioned" instead of "role". Lifting
	// (KeysUnblock) lifts both.
	Deprovisioned bool
}

func (c Change) blockReason() BlockReason {
	if c.Deprovisioned {
		return BlockDeprovisioned
	}
	return BlockRoleDenied
}

// Outcome is what a write found and did.
type Outcome struct {
	Found       bool   // the row exists
	Before      string // its role before the write ("" for NULL)
	RoleChanged bool
	KeysChanged int // keys blocked or unblocked
	// Inactive: after the write the row is deactivated in LiteLLM
	// (metadata.scim_active false, by rolesync or by LiteLLM's SCIM).
	Inactive bool
	// ActivationChanged: the write deactivated the user or lifted
	// rolesync's deactivation.
	ActivationChanged bool
}

// Apply makes the bound row hold c.Role and applies c.Keys, with an audit
// log row for every change, in one statement. A row holding a role rolesync
// does not manage (UnmanagedRoles) is left alone, keys included.
func (d *DB) Apply(ctx context.Context, c Change) (out Outcome, err error) {
	defer func(start time.Time) { observe("apply", start, err) }(time.Now())
	var o Outcome
	var found *bool
	st, err := d.statements(ctx)
	if err == nil {
		err = d.pool.QueryRow(ctx, st.apply, c.RowUserID, c.Role, int(c.Keys), auditReason(c.Reason, c.Object), UnmanagedRoles, int(c.Activation), string(c.blockReason())).
			Scan(&found, &o.Before, &o.RoleChanged, &o.KeysChanged, &o.Inactive, &o.ActivationChanged)
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("proxydb: set role of user %s: %w", c.RowUserID, err)
	}
	o.Found = found != nil && *found
	return o, nil
}

// Delete removes the user as LiteLLM's /user/delete does, in one
// transaction: the user's virtual keys (copied into
// "LiteLLM_DeletedVerificationToken" first), team memberships (rows and the
// user's entries in the teams' member lists), organization memberships and
// invitation links, then the row, with an audit log row. A missing row is
// not an error. Any other row still referencing the user makes it a
// *DeleteBlockedError and nothing is deleted.
func (d *DB) Delete(ctx context.Context, rowUserID, reason, object string) error {
	st, err := d.statements(ctx)
	if err != nil {
		return fmt.Errorf("proxydb: delete user %s: %w", rowUserID, err)
	}
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("proxydb: delete user %s: %w", rowUserID, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The rosters are rewritten under LiteLLM's per-team advisory lock, as
	// member_add/member_delete (and rolesync's team writer) take it: taken
	// first, in team order, before the user's row is locked, so a team
	// batch (team lock, then user rows) and this delete never wait on each
	// other in a cycle.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(t)) FROM (
		SELECT team_id AS t FROM "LiteLLM_TeamTable" WHERE $1 = ANY(members) OR $1 = ANY(admins)
			OR (jsonb_typeof(members_with_roles) = 'array' AND members_with_roles @> jsonb_build_array(jsonb_build_object('user_id', $1::text)))
		UNION SELECT unnest(teams) FROM "LiteLLM_UserTable" WHERE user_id = $1
		ORDER BY 1) teams`, rowUserID); err != nil {
		return fmt.Errorf("proxydb: delete user %s: lock its teams: %w", rowUserID, err)
	}
	var before []byte
	err = tx.QueryRow(ctx, `SELECT jsonb_build_object('user_id', user_id, 'user_email', user_email, 'user_role', user_role,
		'sso_user_id', sso_user_id, 'teams', teams, 'organization_id', organization_id)
		FROM "LiteLLM_UserTable" WHERE user_id = $1 FOR UPDATE`, rowUserID).Scan(&before)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("proxydb: delete user %s: %w", rowUserID, err)
	}
	if st.copyErr != nil {
		return fmt.Errorf("proxydb: delete user %s: %w", rowUserID, st.copyErr)
	}
	for _, stmt := range append([]string{st.copyKeys + ` WHERE user_id = $1`}, deleteSteps...) {
		if _, err := tx.Exec(ctx, stmt, rowUserID); err != nil {
			return deleteError(rowUserID, err)
		}
	}
	if st.audit {
		if _, err := tx.Exec(ctx, insertAudit+` VALUES (gen_random_uuid()::text, `+utcNow+`, '`+ChangedBy+`', '', 'deleted', 'LiteLLM_UserTable', $1, `+auditValue(`$2::jsonb`)+`, `+auditValue(`$3::jsonb`)+`)`,
			rowUserID, before, auditReason(reason, object)); err != nil {
			return deleteError(rowUserID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return deleteError(rowUserID, err)
	}
	return nil
}

func deleteError(userID string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return &DeleteBlockedError{Table: pgErr.TableName, Constraint: pgErr.ConstraintName, UserID: userID}
	}
	return fmt.Errorf("proxydb: delete user %s: %w", userID, err)
}

// deleteSteps are the statements of Delete after the row is locked and the
// user's keys are copied to "LiteLLM_DeletedVerificationToken", in LiteLLM's
// /user/delete order ($1 is the row's user_id).
var deleteSteps = []string{
	`DELETE FROM "LiteLLM_VerificationToken" WHERE user_id = $1`,
	`DELETE FROM "LiteLLM_TeamMembership" WHERE user_id = $1`,
	`UPDATE "LiteLLM_TeamTable" SET
		members_with_roles = CASE WHEN jsonb_typeof(members_with_roles) = 'array'
			THEN COALESCE((SELECT jsonb_agg(m) FROM jsonb_array_elements(members_with_roles) m WHERE m->>'user_id' IS DISTINCT FROM $1), '[]'::jsonb)
			ELSE members_with_roles END,
		members = array_remove(members, $1),
		admins = array_remove(admins, $1),
		updated_at = ` + utcNow + `
	WHERE $1 = ANY(members) OR $1 = ANY(admins)
		OR (jsonb_typeof(members_with_roles) = 'array' AND members_with_roles @> jsonb_build_array(jsonb_build_object('user_id', $1::text)))`,
	`DELETE FROM "LiteLLM_OrganizationMembership" WHERE user_id = $1`,
	`DELETE FROM "LiteLLM_InvitationLink" WHERE user_id = $1 OR created_by = $1 OR updated_by = $1`,
	`DELETE FROM "LiteLLM_UserTable" WHERE user_id = $1`,
}

// SSORoleMappings reports whether LiteLLM's own SSO settings (its
// "LiteLLM_SSOConfig" row, set from the admin UI) map roles: then LiteLLM
// writes user_role at every login too, and the two writers fight.
func (d *DB) SSORoleMappings(ctx context.Context) (bool, error) {
	var on bool
	err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM "LiteLLM_SSOConfig"
		WHERE jsonb_typeof(sso_settings->'role_mappings') = 'object' AND sso_settings->'role_mappings' <> '{}'::jsonb)`).Scan(&on)
	if err != nil {
		if isUndefinedTable(err) {
			return false, nil
		}
		return false, fmt.Errorf("proxydb: read LiteLLM's SSO settings: %w", err)
	}
	return on, nil
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

// auditReason is the rolesync part of an audit row's updated_values.
func auditReason(reason, object string) map[string]string {
	return map[string]string{"reason": reason, "proxyUser": object}
}

// utcNow is the current time as LiteLLM stores it (timestamp(3), UTC).
const utcNow = `(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')`

const insertAudit = `INSERT INTO "LiteLLM_AuditLog" (id, updated_at, changed_by, changed_by_api_key, action, table_name, object_id, before_value, updated_values)`

// auditValue encodes an audit row's before_value or updated_values as
// LiteLLM does: its audit logging json.dumps the dict and stores that text
// in the Json column (litellm/proxy/management_helpers/audit_logs.py,
// create_audit_log_for_update), so the column holds a JSON string of JSON
// text; LiteLLM's UI JSON.parse's it. expr is a jsonb SQL expression.
func auditValue(expr string) string { return `to_jsonb((` + expr + `)::text)` }

type statements struct {
	audit bool
	apply string
	// copyKeys is the INSERT ... SELECT prefix that copies keys into
	// "LiteLLM_DeletedVerificationToken" (append a WHERE); copyErr says why
	// there is none (the tables are not LiteLLM's).
	copyKeys string
	copyErr  error
}

// buildStatements writes the statements, with or without the audit log.
//
// apply: $1 row user_id, $2 role, $3 keys (0 lift the role's and the
// deprovisioning's block, 1 add the block $7, 2 leave the keys, 3 lift the
// deprovisioning's block only), $4 the
// rolesync audit values, $5 the unmanaged roles, $6 the activation (0 lift
// rolesync's deactivation, 1 deactivate, 2 leave), $7 the block reason
// (role or deprovisioned). It locks the row, updates the role and the activation when they
// differ and the row is managed (one UPDATE), adds or lifts the role's key
// block (keyBlockSQL), writes one audit row per change, and returns (found,
// role before, role changed, keys changed, inactive after, activation
// changed).
func buildStatements(audit bool) statements {
	apply := `WITH old AS (
	SELECT user_id, COALESCE(user_role, '') AS role, (user_role IS NULL OR user_role <> ALL($5::text[])) AS managed,
		COALESCE(metadata->'scim_active' = 'false'::jsonb, false) AS inactive, metadata ? 'rolesync_deactivated' AS ours
	FROM "LiteLLM_UserTable" WHERE user_id = $1 FOR UPDATE
), want AS (
	SELECT user_id, role, inactive,
		managed AND role IS DISTINCT FROM $2::text AS set_role,
		managed AND $6::int = 1 AND NOT inactive AS deactivate,
		managed AND $6::int = 0 AND ours AS reactivate
	FROM old
), upd AS (
	-- One UPDATE of the row (a statement updates a row once): the role and
	-- the activation LiteLLM's key authentication reads (metadata.scim_active,
	-- as LiteLLM's SCIM sets it), rolesync's own deactivation recorded with
	-- the value it replaced so that lifting it restores exactly that.
	UPDATE "LiteLLM_UserTable" t SET
		user_role = CASE WHEN w.set_role THEN $2::text ELSE t.user_role END,
		metadata = CASE
			WHEN w.deactivate THEN t.metadata || jsonb_build_object('scim_active', false,
				'rolesync_deactivated', jsonb_build_object('prior', t.metadata->'scim_active'))
			WHEN w.reactivate THEN (t.metadata - 'rolesync_deactivated' - 'scim_active')
				|| CASE WHEN jsonb_typeof(t.metadata->'rolesync_deactivated'->'prior') = 'boolean'
					THEN jsonb_build_object('scim_active', t.metadata->'rolesync_deactivated'->'prior') ELSE '{}'::jsonb END
			ELSE t.metadata END,
		updated_at = ` + utcNow + `
	FROM want w WHERE t.user_id = w.user_id AND (w.set_role OR w.deactivate OR w.reactivate)
	RETURNING t.user_id, w.role AS before, w.set_role, w.deactivate, w.reactivate, w.inactive AS was_inactive,
		COALESCE(t.metadata->'scim_active' = 'false'::jsonb, false) AS inactive
), ` + keyBlockLiftSQL("keys", `k.user_id IN (SELECT user_id FROM old WHERE managed) AND $3::int <> 2`, `$7::text`, `$3::int = 1`,
		`CASE WHEN $3::int = 3 THEN ARRAY['`+string(BlockDeprovisioned)+`'] ELSE ARRAY['`+string(BlockRoleDenied)+`', '`+string(BlockDeprovisioned)+`'] END`)
	if audit {
		apply += `, audit_role AS (
	` + insertAudit + `
	SELECT gen_random_uuid()::text, ` + utcNow + `, '` + ChangedBy + `', '', 'updated', 'LiteLLM_UserTable', user_id,
		` + auditValue(`jsonb_build_object('user_role', NULLIF(before, ''))`) + `, ` + auditValue(`jsonb_build_object('user_role', $2::text, 'rolesync', $4::jsonb)`) + `
	FROM upd WHERE set_role
), audit_active AS (
	` + insertAudit + `
	SELECT gen_random_uuid()::text, ` + utcNow + `, '` + ChangedBy + `', '', 'updated', 'LiteLLM_UserTable', user_id,
		` + auditValue(`jsonb_build_object('scim_active', NOT was_inactive)`) + `, ` + auditValue(`jsonb_build_object('scim_active', NOT inactive, 'rolesync', $4::jsonb)`) + `
	FROM upd WHERE deactivate OR reactivate
), ` + keyAuditSQL("audit_keys", "keys", "$4::jsonb")
	} else {
		apply += `, unused AS (SELECT $4::jsonb)`
	}
	apply += `
SELECT (SELECT true FROM old), COALESCE((SELECT role FROM old), ''), EXISTS (SELECT 1 FROM upd WHERE set_role),
	(SELECT count(*) FROM keys WHERE blocked IS DISTINCT FROM was_blocked)::int,
	COALESCE((SELECT inactive FROM upd), (SELECT inactive FROM old), false),
	EXISTS (SELECT 1 FROM upd WHERE deactivate OR reactivate)`

	return statements{audit: audit, apply: apply}
}
