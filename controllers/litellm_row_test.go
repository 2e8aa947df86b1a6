package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// These tests run the controller against LiteLLM's own schema (pgtest's
// litellm_schema.sql) and replay what LiteLLM itself does to its rows.

// withConn runs f on a connection to the database at url (as LiteLLM or an
// admin would connect), closed when f returns; an error fails the test.
func withConn(t testing.TB, url string, f func(context.Context, *pgx.Conn) error) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if err := f(ctx, conn); err != nil {
		t.Fatal(err)
	}
}

// sqlCount runs a count query on the database at url.
func sqlCount(t testing.TB, url, sql string, args ...any) int {
	t.Helper()
	var n int
	withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
		if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
	return n
}

// litellmSignUp replays LiteLLM's SSO first login after its login hook
// returned: look the user up by user_id, else sso_user_id, else email
// (case-insensitively, then record the SSO id on that row), and insert a new
// row (user_id = sso_user_id = the SSO id) only when none was found. An
// insert that fails (a row rolesync created meanwhile) fails the test.
func litellmSignUp(t testing.TB, url, ssoID, email, role string) {
	t.Helper()
	withConn(t, url, func(ctx context.Context, conn *pgx.Conn) error {
		var id string
		if conn.QueryRow(ctx, `SELECT user_id FROM "LiteLLM_UserTable" WHERE user_id = $1`, ssoID).Scan(&id) == nil ||
			conn.QueryRow(ctx, `SELECT user_id FROM "LiteLLM_UserTable" WHERE sso_user_id = $1`, ssoID).Scan(&id) == nil {
			return nil
		}
		if conn.QueryRow(ctx, `SELECT user_id FROM "LiteLLM_UserTable" WHERE lower(user_email) = lower($1) LIMIT 1`, email).Scan(&id) == nil {
			_, err := conn.Exec(ctx, `UPDATE "LiteLLM_UserTable" SET sso_user_id = $2 WHERE user_id = $1`, id, ssoID)
			return err
		}
		if _, err := conn.Exec(ctx, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_email, user_role, updated_at)
			VALUES ($1, $1, $2, $3, now())`, ssoID, email, role); err != nil {
			return fmt.Errorf("LiteLLM's own sign-up insert failed: %w", err)
		}
		return nil
	})
}

// signedUp gives pu the row LiteLLM's own sign-up (or an admin's /user/new)
// creates in the database at url: rolesync never creates user rows, it
// binds to LiteLLM's.
func signedUp(t testing.TB, url string, pu *rolesyncv1.ProxyUser) *rolesyncv1.ProxyUser {
	t.Helper()
	litellmSignUp(t, url, pu.Spec.UserID, pu.Spec.Email, "internal_user_viewer")
	return pu
}

func TestInvitedUserIsBoundToLiteLLMsRow(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)
	pu := newUser(ns, "invited", keycloakClaims("litellm-admin"), false)
	const uuid = "0b6f6c2e-8d2a-4d55-9f43-000000000001"
	// An invited user: LiteLLM gave the row a UUID and recorded the SSO id at the first login.
	sqlExec(t, suiteDBURL, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_email, user_role) VALUES ($1, $2, $3, 'internal_user_viewer')`,
		uuid+ns[5:], pu.Spec.UserID, pu.Spec.Email)
	createUser(t, pu)
	got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleProxyAdmin))
	if got.Status.DatabaseUserID != uuid+ns[5:] {
		t.Fatalf("bound to %q", got.Status.DatabaseUserID)
	}
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1 AND user_role = 'proxy_admin'`, uuid+ns[5:]); n != 1 {
		t.Fatal("the invited user's row does not hold the mapped role")
	}
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1`, pu.Spec.UserID); n != 0 {
		t.Fatal("a second row LiteLLM never reads was created")
	}
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE object_id = $1 AND changed_by = 'rolesync' AND action = 'updated'
		AND (before_value #>> '{}')::jsonb->>'user_role' = 'internal_user_viewer' AND (updated_values #>> '{}')::jsonb->>'user_role' = 'proxy_admin'
		AND (updated_values #>> '{}')::jsonb->'rolesync'->>'reason' = 'keycloak#0 resource_access.litellm.roles=litellm-admin'`, uuid+ns[5:]); n != 1 {
		t.Fatal("no LiteLLM audit log row for the role change")
	}
}

func TestRowFoundByEmailAndAmbiguousEmail(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)
	// A row LiteLLM keyed by a UUID, with the email in another case and no SSO id yet.
	byEmail := newUser(ns, "mail", keycloakClaims("team-x"), false)
	sqlExec(t, suiteDBURL, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role) VALUES ($1, upper($2), NULL)`, "uuid-mail-"+ns, byEmail.Spec.Email)
	createUser(t, byEmail)
	got := waitUser(t, client.ObjectKeyFromObject(byEmail), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	if got.Status.DatabaseUserID != "uuid-mail-"+ns {
		t.Fatalf("bound to %q", got.Status.DatabaseUserID)
	}

	// Two rows share an email and neither has the user's id: no write.
	amb := newUser(ns, "twice", keycloakClaims("litellm-admin"), false)
	sqlExec(t, suiteDBURL, `INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role) VALUES ($1, $3, 'internal_user'), ($2, upper($3), 'internal_user')`,
		"a-"+ns, "b-"+ns, amb.Spec.Email)
	createUser(t, amb)
	got = waitUser(t, client.ObjectKeyFromObject(amb), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonAmbiguousUser)
	})
	if err := conditionIs(got, rolesyncv1.ConditionReady, metav1.ConditionFalse, rolesyncv1.ReasonAmbiguousUser); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, amb, rolesyncv1.ReasonAmbiguousUser, "a-"+ns+", b-"+ns)
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id IN ($1, $2) AND user_role = 'internal_user'`, "a-"+ns, "b-"+ns); n != 2 {
		t.Fatal("an ambiguous row was written")
	}
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1`, amb.Spec.UserID); n != 0 {
		t.Fatal("a third row was created for an ambiguous user")
	}
	// The admin fixes it: one row gets the SSO id. The user binds to it.
	sqlExec(t, suiteDBURL, `UPDATE "LiteLLM_UserTable" SET sso_user_id = $2 WHERE user_id = $1`, "b-"+ns, amb.Spec.UserID)
	got = waitUser(t, client.ObjectKeyFromObject(amb), 60*time.Second, settled(rolesyncv1.RoleProxyAdmin))
	if got.Status.DatabaseUserID != "b-"+ns {
		t.Fatalf("bound to %q", got.Status.DatabaseUserID)
	}
}

// TestUsersWaitForLiteLLMsRow: LiteLLM is the only creator of user rows
// (its sign-up applies default_internal_user_params, which a row that
// exists before the first login would skip): a user who came through a
// login, and one an admin created ahead of the first login, both wait for
// LiteLLM's insert (which must not fail), then get their role.
func TestUsersWaitForLiteLLMsRow(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)

	login := newUser(ns, "fresh", keycloakClaims("litellm-auditor"), false)
	now := metav1.NewMicroTime(time.Now())
	login.Spec.LastLoginTime = &now // as the login server records it
	createUser(t, login)
	waitUser(t, client.ObjectKeyFromObject(login), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonWaitingForRow)
	})
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1 OR sso_user_id = $1`, login.Spec.UserID); n != 0 {
		t.Fatal("rolesync created the row of a login user: LiteLLM's own insert would fail")
	}
	// LiteLLM's sign-up, with the role the hook returned for a new user.
	litellmSignUp(t, suiteDBURL, login.Spec.UserID, login.Spec.Email, "internal_user_viewer")
	got := waitUser(t, client.ObjectKeyFromObject(login), 30*time.Second, settled(rolesyncv1.RoleProxyAdminViewer))
	if got.Status.DatabaseUserID != login.Spec.UserID {
		t.Fatalf("bound to %q", got.Status.DatabaseUserID)
	}

	// A pre-provisioned user (no login yet) waits as well: LiteLLM stays the
	// only creator of user rows, so its sign-up applies its own defaults
	// (default_internal_user_params) at the first login.
	pre := createUser(t, newUser(ns, "early", keycloakClaims("team-e"), false))
	waitUser(t, client.ObjectKeyFromObject(pre), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonWaitingForRow)
	})
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1 OR sso_user_id = $1`, pre.Spec.UserID); n != 0 {
		t.Fatal("rolesync created the row of a pre-provisioned user")
	}
	litellmSignUp(t, suiteDBURL, pre.Spec.UserID, pre.Spec.Email, "internal_user_viewer")
	waitUser(t, client.ObjectKeyFromObject(pre), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	if n := sqlCount(t, suiteDBURL, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1 OR sso_user_id = $1 OR lower(user_email) = $2`, pre.Spec.UserID, pre.Spec.Email); n != 1 {
		t.Fatalf("%d rows for the pre-provisioned user after LiteLLM's sign-up", n)
	}
}

func TestUnmanagedRoleIsNeverOverwritten(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)
	pu := createUser(t, signedUp(t, suiteDBURL, newUser(ns, "orgadmin", keycloakClaims("team-o"), false)))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	setRowRole(t, suiteDBURL, pu.Spec.UserID, "org_admin") // an org admin, set in LiteLLM's UI
	got := waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionDrifted, metav1.ConditionTrue, rolesyncv1.ReasonUnmanagedRole)
	})
	if err := conditionIs(got, rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonUnmanagedRole); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pu, rolesyncv1.ReasonUnmanagedRole, "org_admin")
	// A mapping change that would move the user does not touch the row either.
	patchUser(t, pu, func(u *rolesyncv1.ProxyUser) { u.Spec.RoleOverride = ptr.To(rolesyncv1.RoleProxyAdmin) })
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(u *rolesyncv1.ProxyUser) error {
		if u.Status.Role != rolesyncv1.RoleProxyAdmin {
			return fmt.Errorf("role %q", u.Status.Role)
		}
		return conditionIs(u, rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonUnmanagedRole)
	})
	if role, _ := dbRole(t, suiteDB, pu.Spec.UserID); role != "org_admin" {
		t.Fatalf("rolesync overwrote org_admin with %q", role)
	}
}

func patchUser(t *testing.T, pu *rolesyncv1.ProxyUser, change func(*rolesyncv1.ProxyUser)) {
	t.Helper()
	cur := &rolesyncv1.ProxyUser{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pu), cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	change(cur)
	if err := k8sClient.Patch(context.Background(), cur, patch); err != nil {
		t.Fatal(err)
	}
}

func waitGone(t *testing.T, pu *rolesyncv1.ProxyUser) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pu), &rolesyncv1.ProxyUser{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
}

// TestDeleteLikeLiteLLMAndDeleteBlocked deletes a user who has keys, a team
// and an organization membership and invitations (all removed with the row,
// as LiteLLM's /user/delete does), and one whose key a JWT mapping still
// references (DeleteBlocked until an admin removes it).
func TestDeleteLikeLiteLLMAndDeleteBlocked(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	createMapping(t, ns, keycloakMapping, false)
	url := suiteDBURL

	pu := newUser(ns, "leaver", keycloakClaims("team-l"), false)
	pu.Spec.DeletionPolicy = rolesyncv1.DeletionPolicyDelete
	createUser(t, signedUp(t, url, pu))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	id, org, team := pu.Spec.UserID, "org-"+ns, "team-"+ns
	sqlExec(t, url, `INSERT INTO "LiteLLM_BudgetTable" (budget_id, created_by, updated_by) VALUES ($1, 'x', 'x')`, "b-"+ns)
	sqlExec(t, url, `INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias, budget_id, created_by, updated_by) VALUES ($1, 'o', $2, 'x', 'x')`, org, "b-"+ns)
	sqlExec(t, url, `INSERT INTO "LiteLLM_OrganizationMembership" (user_id, organization_id) VALUES ($1, $2)`, id, org)
	sqlExec(t, url, `INSERT INTO "LiteLLM_InvitationLink" (id, user_id, expires_at, created_at, created_by, updated_at, updated_by) VALUES ($1, $2, now(), now(), $2, now(), $2)`, "inv-"+ns, id)
	sqlExec(t, url, `INSERT INTO "LiteLLM_TeamTable" (team_id, members_with_roles) VALUES ($1, jsonb_build_array(jsonb_build_object('user_id', $2::text, 'role', 'user')))`, team, id)
	sqlExec(t, url, `INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id) VALUES ($1, $2)`, id, team)
	sqlExec(t, url, `UPDATE "LiteLLM_UserTable" SET teams = ARRAY[$2] WHERE user_id = $1`, id, team)
	sqlExec(t, url, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, team_id) VALUES ($1, $2, $3)`, "key-"+ns, id, team)

	if err := k8sClient.Delete(context.Background(), pu); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pu)
	for q, want := range map[string]int{
		`SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1`:                                   0,
		`SELECT count(*) FROM "LiteLLM_OrganizationMembership" WHERE user_id = $1`:                      0,
		`SELECT count(*) FROM "LiteLLM_InvitationLink" WHERE user_id = $1`:                              0,
		`SELECT count(*) FROM "LiteLLM_TeamMembership" WHERE user_id = $1`:                              0,
		`SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE user_id = $1`:                           0,
		`SELECT count(*) FROM "LiteLLM_DeletedVerificationToken" WHERE user_id = $1`:                    1,
		`SELECT count(*) FROM "LiteLLM_TeamTable" WHERE members_with_roles::text LIKE '%' || $1 || '%'`: 0,
		`SELECT count(*) FROM "LiteLLM_AuditLog" WHERE object_id = $1 AND action = 'deleted'`:           1,
	} {
		if n := sqlCount(t, url, q, id); n != want {
			t.Errorf("%s: %d, want %d", q, n, want)
		}
	}

	stuck := newUser(ns, "stuck", keycloakClaims("team-s"), false)
	stuck.Spec.DeletionPolicy = rolesyncv1.DeletionPolicyDelete
	createUser(t, signedUp(t, url, stuck))
	waitUser(t, client.ObjectKeyFromObject(stuck), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	sqlExec(t, url, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id) VALUES ($1, $2)`, "skey-"+ns, stuck.Spec.UserID)
	// A JWT mapping on the key no longer blocks (LiteLLM's FK cascades since
	// issue #33702); a table of a newer release that references the user does.
	sqlExec(t, url, `INSERT INTO "LiteLLM_JWTKeyMapping" (id, jwt_claim_name, jwt_claim_value, token, updated_at) VALUES ($1, 'sub', $1, $2, now())`, "m-"+ns, "skey-"+ns)
	sqlExec(t, url, `CREATE TABLE IF NOT EXISTS "LiteLLM_FutureGrant" (id text PRIMARY KEY, user_id text NOT NULL REFERENCES "LiteLLM_UserTable"(user_id) ON DELETE RESTRICT)`)
	sqlExec(t, url, `INSERT INTO "LiteLLM_FutureGrant" (id, user_id) VALUES ($1, $2)`, "g-"+ns, stuck.Spec.UserID)
	if err := k8sClient.Delete(context.Background(), stuck); err != nil {
		t.Fatal(err)
	}
	waitUser(t, client.ObjectKeyFromObject(stuck), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionDeleteBlocked, metav1.ConditionTrue, rolesyncv1.ReasonDeleteBlocked)
	})
	waitEvent(t, stuck, rolesyncv1.ReasonDeleteBlocked, "LiteLLM_FutureGrant")
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1`, stuck.Spec.UserID) +
		sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE user_id = $1`, stuck.Spec.UserID); n != 2 {
		t.Fatal("a blocked delete removed part of the user")
	}
	// The admin removes the row: the delete completes on the next retry, the
	// key's JWT mapping with it.
	sqlExec(t, url, `DELETE FROM "LiteLLM_FutureGrant" WHERE id = $1`, "g-"+ns)
	waitGone(t, stuck)
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_JWTKeyMapping" WHERE id = $1`, "m-"+ns); n != 0 {
		t.Fatal("the key's JWT mapping survived its key")
	}
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_id = $1`, stuck.Spec.UserID); n != 0 {
		t.Fatal("row survived")
	}
}

// TestKeyRevocationBlocksAndRestoresKeys runs an operator with
// KeyRevocation Block: a user denied by a mapping edit loses the role and
// their keys' access; granted again, they get back the keys rolesync
// blocked, not the one an admin blocked.
func TestKeyRevocationBlocksAndRestoresKeys(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	startOperator(t, ns, Options{Store: openDB(t, url), KeyRevocation: KeyRevocationBlock, ResyncPeriod: 2 * time.Second})
	rm := createMapping(t, ns, strictMapping, true)
	pu := newUser(ns, "keys", map[string]any{"groups": []any{"platform"}}, true)
	pu.Spec.DeletionPolicy = rolesyncv1.DeletionPolicyDowngrade
	createUser(t, signedUp(t, url, pu))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	sqlExec(t, url, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id, blocked) VALUES ('k1', $1, NULL), ('k2', $1, false), ('k3', $1, true)`, pu.Spec.UserID)

	// The group no longer grants anything: denied, keys blocked.
	patch := client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules[0].Equals = ptr.To("platform-v2")
	if err := k8sClient.Patch(context.Background(), rm, patch); err != nil {
		t.Fatal(err)
	}
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, func(u *rolesyncv1.ProxyUser) error {
		return conditionIs(u, rolesyncv1.ConditionDenied, metav1.ConditionTrue, rolesyncv1.ReasonNoMatch)
	})
	eventually(t, 30*time.Second, func() error {
		if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked`); n != 3 {
			return fmt.Errorf("%d keys blocked", n)
		}
		return nil
	})
	if role, _ := dbRole(t, openDB(t, url), pu.Spec.UserID); role != "internal_user_viewer" {
		t.Fatalf("denied row holds %q", role)
	}
	// A key created while denied is blocked at the next drift check.
	sqlExec(t, url, `INSERT INTO "LiteLLM_VerificationToken" (token, user_id) VALUES ('k4', $1)`, pu.Spec.UserID)
	eventually(t, 30*time.Second, func() error {
		if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = 'k4' AND blocked`); n != 1 {
			return fmt.Errorf("new key not blocked")
		}
		return nil
	})

	// Granted again: the keys rolesync blocked work again; k3 stays blocked.
	patch = client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules[0].Equals = ptr.To("platform")
	if err := k8sClient.Patch(context.Background(), rm, patch); err != nil {
		t.Fatal(err)
	}
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	eventually(t, 30*time.Second, func() error {
		if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked`); n != 1 {
			return fmt.Errorf("%d keys blocked", n)
		}
		return nil
	})
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE token = 'k3' AND blocked`); n != 1 {
		t.Fatal("rolesync unblocked a key an admin blocked")
	}
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_AuditLog" WHERE table_name = 'LiteLLM_VerificationToken' AND action IN ('blocked', 'updated')`); n != 6 {
		t.Fatalf("%d key audit rows, want 3 blocked + 3 unblocked (LiteLLM's vocabulary: an unblock is 'updated')", n)
	}

	// Deleted with Downgrade: the row falls to the lowest role and the keys are blocked.
	if err := k8sClient.Delete(context.Background(), pu); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pu)
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked`); n != 4 {
		t.Fatalf("%d keys blocked after a Downgrade deletion", n)
	}
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_role = 'internal_user_viewer'`); n != 1 {
		t.Fatal("row not downgraded")
	}
}

// TestCompetingWriterReported plays LiteLLM's own role mapping putting the
// row back after every correction.
func TestCompetingWriterReported(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	startOperator(t, ns, Options{Store: openDB(t, url), ResyncPeriod: time.Second})
	createMapping(t, ns, keycloakMapping, true)
	pu := createUser(t, signedUp(t, url, newUser(ns, "fought", keycloakClaims("team-f"), true)))
	waitUser(t, client.ObjectKeyFromObject(pu), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the other writer: puts proxy_admin back whenever the row differs
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		for ctx.Err() == nil {
			_, _ = conn.Exec(ctx, `UPDATE "LiteLLM_UserTable" SET user_role = 'proxy_admin' WHERE user_id = $1 AND user_role <> 'proxy_admin'`, pu.Spec.UserID)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	waitUser(t, client.ObjectKeyFromObject(pu), 60*time.Second, func(u *rolesyncv1.ProxyUser) error {
		return conditionIs(u, rolesyncv1.ConditionDrifted, metav1.ConditionTrue, rolesyncv1.ReasonCompetingWriter)
	})
	waitEvent(t, pu, rolesyncv1.ReasonCompetingWriter, "another writer")
}

// TestOneUserIDInTwoNamespacesIsARowConflict: LiteLLM keys rows by user_id
// alone, so two ProxyUsers with one userID (other namespace, or other
// issuer) would fight over one row. The older owns it; the newer reports
// RowConflict and writes nothing, and takes over when the older goes.
func TestOneUserIDInTwoNamespacesIsARowConflict(t *testing.T) {
	needSuite(t)
	ns1, ns2 := newNamespace(t), newNamespace(t)
	createMapping(t, ns1, keycloakMapping, false)
	createMapping(t, ns2, keycloakMapping, false)
	first := newUser(ns1, "shared", keycloakClaims("team-s"), false)
	first.Spec.UserID = "shared-" + ns1
	createUser(t, signedUp(t, suiteDBURL, first))
	waitUser(t, client.ObjectKeyFromObject(first), 30*time.Second, settled(rolesyncv1.RoleInternalUser))

	second := newUser(ns2, "shared", keycloakClaims("litellm-admin"), false)
	second.Spec.UserID = first.Spec.UserID
	second.Spec.Issuer = "https://other-idp.example.com"
	createUser(t, second)
	// Creation times have second precision: the order is (time, namespace, name).
	cur := func(pu *rolesyncv1.ProxyUser) *rolesyncv1.ProxyUser {
		got := &rolesyncv1.ProxyUser{}
		if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pu), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	owner, other, ownerRole, otherRole := first, second, "internal_user", rolesyncv1.RoleProxyAdmin
	if cur(second).CreatedBefore(cur(first)) {
		owner, other, ownerRole, otherRole = second, first, "proxy_admin", rolesyncv1.RoleInternalUser
	}
	got := waitUser(t, client.ObjectKeyFromObject(other), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		return conditionIs(pu, rolesyncv1.ConditionSynced, metav1.ConditionFalse, rolesyncv1.ReasonRowConflict)
	})
	if err := conditionIs(got, rolesyncv1.ConditionReady, metav1.ConditionFalse, rolesyncv1.ReasonRowConflict); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, other, rolesyncv1.ReasonRowConflict, owner.Namespace+"/shared")
	waitRow(t, suiteDB, first.Spec.UserID, ownerRole)
	// The owner goes (Retain): the other one takes the row over.
	if err := k8sClient.Delete(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	waitUser(t, client.ObjectKeyFromObject(other), 30*time.Second, settled(otherRole))
	waitRow(t, suiteDB, first.Spec.UserID, string(otherRole))
}

// TestDeniedUserIsDeactivatedInLiteLLM: a user rolesync denies is
// deactivated the way LiteLLM's SCIM does it (metadata.scim_active false,
// which LiteLLM's key authentication refuses with 401 whatever door the user
// comes through), shown in status; a grant lifts exactly rolesync's
// deactivation, never one LiteLLM's SCIM made. Revocation stays Off: the
// deactivation does not depend on key blocks.
func TestDeniedUserIsDeactivatedInLiteLLM(t *testing.T) {
	needSuite(t)
	ns := newNamespace(t)
	url, err := pgServer.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	startOperator(t, ns, Options{Store: openDB(t, url), ResyncPeriod: 2 * time.Second})
	rm := createMapping(t, ns, strictMapping, true)
	ana := createUser(t, signedUp(t, url, newUser(ns, "ana", map[string]any{"groups": []any{"platform"}}, true)))
	sci := newUser(ns, "sci", map[string]any{"groups": []any{"platform"}}, true)
	// sci's row exists and LiteLLM's SCIM deactivated it.
	sqlExec(t, url, `INSERT INTO "LiteLLM_UserTable" (user_id, sso_user_id, user_role, metadata) VALUES ($1, $1, 'internal_user', '{"scim_active": false}')`, sci.Spec.UserID)
	createUser(t, sci)
	waitUser(t, client.ObjectKeyFromObject(ana), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	waitUser(t, client.ObjectKeyFromObject(sci), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		if !pu.Status.Deactivated {
			return fmt.Errorf("status.deactivated false for a row LiteLLM's SCIM deactivated")
		}
		return settled(rolesyncv1.RoleInternalUser)(pu)
	})
	active := func(user string) string {
		var v string
		withConn(t, url, func(ctx context.Context, c *pgx.Conn) error {
			return c.QueryRow(ctx, `SELECT COALESCE(metadata->>'scim_active', '') FROM "LiteLLM_UserTable" WHERE user_id = $1`, user).Scan(&v)
		})
		return v
	}

	// The group no longer grants anything: both denied, ana deactivated by rolesync.
	patch := client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules[0].Equals = ptr.To("platform-v2")
	if err := k8sClient.Patch(context.Background(), rm, patch); err != nil {
		t.Fatal(err)
	}
	waitUser(t, client.ObjectKeyFromObject(ana), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		if !pu.Status.Deactivated {
			return fmt.Errorf("status.deactivated false")
		}
		return conditionIs(pu, rolesyncv1.ConditionDenied, metav1.ConditionTrue, rolesyncv1.ReasonNoMatch)
	})
	if v := active(ana.Spec.UserID); v != "false" {
		t.Fatalf("ana's row scim_active %q, want false", v)
	}
	// Someone reactivates ana behind rolesync's back: the next resync deactivates again.
	sqlExec(t, url, `UPDATE "LiteLLM_UserTable" SET metadata = metadata - 'scim_active' WHERE user_id = $1`, ana.Spec.UserID)
	eventually(t, 30*time.Second, func() error {
		if v := active(ana.Spec.UserID); v != "false" {
			return fmt.Errorf("scim_active %q", v)
		}
		return nil
	})

	// Granted again: rolesync's deactivation is lifted, LiteLLM's SCIM one is not.
	patch = client.MergeFrom(rm.DeepCopy())
	rm.Spec.Rules[0].Equals = ptr.To("platform")
	if err := k8sClient.Patch(context.Background(), rm, patch); err != nil {
		t.Fatal(err)
	}
	waitUser(t, client.ObjectKeyFromObject(ana), 30*time.Second, func(pu *rolesyncv1.ProxyUser) error {
		if pu.Status.Deactivated {
			return fmt.Errorf("still deactivated")
		}
		return settled(rolesyncv1.RoleInternalUser)(pu)
	})
	if v := active(ana.Spec.UserID); v != "" {
		t.Fatalf("ana's row scim_active %q after the grant, want it gone", v)
	}
	got := waitUser(t, client.ObjectKeyFromObject(sci), 30*time.Second, settled(rolesyncv1.RoleInternalUser))
	if v := active(sci.Spec.UserID); v != "false" || !got.Status.Deactivated {
		t.Fatalf("LiteLLM's SCIM deactivation was lifted: scim_active %q, status.deactivated %v", v, got.Status.Deactivated)
	}
	if n := sqlCount(t, url, `SELECT count(*) FROM "LiteLLM_VerificationToken" WHERE blocked`); n != 0 {
		t.Fatalf("%d keys blocked with revocation Off", n)
	}
}
