// Package proxyuser holds the rules about a ProxyUser that the controller,
// the login server and the rolesync CLI share: who a ProxyUser is (its
// identity, its derived name, which of several owns it), the finalizer, when
// the mappings are loaded enough to decide, and the one decision of a user's
// role. The decision (Decide) does no I/O; the lookups read through a
// client.Reader and write nothing.
package proxyuser

import (
	"time"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// Input is what a role decision is made from.
type Input struct {
	// Namespace of the user (sources are reported relative to it).
	Namespace string
	// Engine is the namespace's RoleMapping engine.
	Engine *rolemap.Engine
	// Issuer is the identity provider of the user's logins.
	Issuer string
	// Override is spec.roleOverride (nil when unset): it decides, whatever
	// the claims.
	Override *rolesyncv1.Role
	// Stored are the claims the ProxyUser holds (nil for a new user).
	Stored map[string]any
	// Login are the claims of a login being answered; nil when deciding from
	// the stored claims only (the controller, explain --user, diff).
	Login map[string]any
	// Existing: a ProxyUser exists for the login's user.
	Existing bool
	// Stale: the login is older than the one the ProxyUser records.
	Stale bool
	// Directory is what the identity provider's directory says about the
	// user (spec.directory; nil when it never spoke): a deprovisioned user
	// is denied whatever the claims or an override, and once a directory
	// group listed the user, the groups claim comes from the directory.
	Directory *rolesyncv1.DirectoryUser
	// GroupsClaim is the claim the directory's groups are (--scim-groups-claim).
	GroupsClaim string
	// ClaimsTime is when the stored claims were last stated (the newest of
	// spec.lastLoginTime and spec.directory.updatedAt) and Now the time of
	// the decision: mappings with maxClaimAge match no rule on claims older
	// than it. Zero Now: claims never age (a login's own claims are new).
	ClaimsTime, Now time.Time
}

// DefaultGroupsClaim is the default of --scim-groups-claim.
const DefaultGroupsClaim = "groups"

// Decision is a user's role and why, as status.role/source and the login
// answer report it.
type Decision struct {
	rolemap.Resolution
	// Engine is the engine's decision the resolution came from (its matches
	// explain it); zero when an override decided.
	Engine rolemap.Decision
	// KeepStored: the login's claims must not replace the stored ones
	// (syncPolicy FirstLoginOnly for an existing user, or a stale login).
	KeepStored bool
}

// Decide is the one decision of a user's role:
//   - spec.roleOverride decides when set (it may exceed any maxRole);
//   - otherwise the namespace's mappings decide on the claims (each
//     mapping's maxRole caps it; onNoMatch Deny or a missing mapping denies):
//     the stored claims, or a login's claims for a new user;
//   - an existing user's login under syncPolicy FirstLoginOnly keeps the
//     stored claims, so the role they give stays;
//   - a stale login (older than the recorded one) changes nothing and
//     answers no more than its own claims give: the lower of the stored and
//     the login's decision (denied when its own claims grant nothing).
func Decide(in Input) Decision {
	if Deprovisioned(in.Directory) {
		return Decision{Resolution: rolemap.Resolution{Denied: true, Reason: rolesyncv1.ReasonDeprovisioned,
			Message: "the identity provider's directory deprovisioned the user (SCIM active=false or deleted)"}}
	}
	if rolesyncv1.OverrideSet(in.Override) {
		return Decision{Resolution: rolemap.Resolve(in.Namespace, in.Override, nil)}
	}
	evaluate := func(claims map[string]any, age time.Duration) Decision {
		claims = WithDirectoryGroups(claims, in.Directory, in.GroupsClaim)
		d := in.Engine.EvaluateAged(claims, in.Issuer, age)
		out := Decision{Resolution: rolemap.Resolve(in.Namespace, nil, &d), Engine: d}
		markDirectory(&out, in.Directory, in.GroupsClaim)
		return out
	}
	var storedAge time.Duration
	if !in.Now.IsZero() && !in.ClaimsTime.IsZero() {
		storedAge = in.Now.Sub(in.ClaimsTime)
	}
	if in.Login == nil {
		return evaluate(in.Stored, storedAge)
	}
	login := evaluate(in.Login, 0)
	if !in.Existing {
		return login
	}
	if in.Stale {
		stored := evaluate(in.Stored, storedAge)
		out := stored
		if login.Denied || login.Role.Rank() < stored.Role.Rank() {
			out = login
		}
		out.KeepStored = true
		return out
	}
	if login.Engine.SyncPolicy == rolesyncv1.SyncPolicyFirstLoginOnly {
		out := evaluate(in.Stored, storedAge)
		out.KeepStored = true
		return out
	}
	return login
}

// UserInput is the Input of a decision from what pu stores (its claims,
// override and directory data), with the namespace's engine, the groups
// claim (--scim-groups-claim) and the time of the decision.
func UserInput(pu *rolesyncv1.ProxyUser, engine *rolemap.Engine, groupsClaim string, now time.Time) Input {
	return Input{Namespace: pu.Namespace, Engine: engine, Issuer: pu.Spec.Issuer, Override: pu.Spec.RoleOverride,
		Stored: StoredClaims(pu), Directory: pu.Spec.Directory, GroupsClaim: groupsClaim, ClaimsTime: ClaimsTime(pu), Now: now}
}

// Deprovisioned reports whether the directory deprovisioned the user.
func Deprovisioned(dir *rolesyncv1.DirectoryUser) bool {
	return dir != nil && (!dir.Active || dir.Deleted)
}

// WithDirectoryGroups returns claims with the groups claim replaced by the
// display names of the user's directory groups, once a directory group has
// listed the user (groupsManaged): from then on that claim comes from the
// directory alone, so a group the directory removed is gone even when the
// last login carried it. Otherwise claims as they are. claims is not
// modified.
func WithDirectoryGroups(claims map[string]any, dir *rolesyncv1.DirectoryUser, groupsClaim string) map[string]any {
	if dir == nil || !dir.GroupsManaged {
		return claims
	}
	if groupsClaim == "" {
		groupsClaim = DefaultGroupsClaim
	}
	out := make(map[string]any, len(claims)+1)
	for k, v := range claims {
		out[k] = v
	}
	names := make([]any, 0, len(dir.Groups))
	for _, g := range dir.Groups {
		names = append(names, g.DisplayName)
	}
	out[groupsClaim] = names
	return out
}

// markDirectory records in the source that the deciding claim came from
// the directory.
func markDirectory(d *Decision, dir *rolesyncv1.DirectoryUser, groupsClaim string) {
	if groupsClaim == "" {
		groupsClaim = DefaultGroupsClaim
	}
	if src := d.Source; src != nil && dir != nil && dir.GroupsManaged && src.Claim == groupsClaim {
		src.FromDirectory = true
		src.Description = rolesyncv1.Truncate(src.Description+" (directory)", 512)
		d.Message += " (from the identity provider's directory)"
	}
}

// ClaimsTime is when a ProxyUser's claims were last stated: the newest of
// its last login and the directory's last update.
func ClaimsTime(pu *rolesyncv1.ProxyUser) time.Time {
	var t time.Time
	if pu.Spec.LastLoginTime != nil {
		t = pu.Spec.LastLoginTime.Time
	}
	if d := pu.Spec.Directory; d != nil && d.UpdatedAt != nil && d.UpdatedAt.After(t) {
		t = d.UpdatedAt.Time
	}
	return t
}

// StoredClaims decodes the claims a ProxyUser holds, numbers exact (nil
// when it holds none).
func StoredClaims(pu *rolesyncv1.ProxyUser) map[string]any {
	if pu.Spec.Claims == nil || len(pu.Spec.Claims.Raw) == 0 {
		return nil
	}
	// The schema makes claims an object; a decode error leaves no claims
	// (and so only defaults or a denial), never a crash.
	claims, _ := claimpath.DecodeClaims(pu.Spec.Claims.Raw)
	return claims
}
