// Package proxyuser holds the rules about a ProxyUser that the controller,
// the login server and the rolesync CLI share: who a ProxyUser is (its
// identity, its derived name, which of several owns it), the finalizer, when
// the mappings are loaded enough to decide, and the one decision of a user's
// role. The decision (Decide) does no I/O; the lookups read through a
// client.Reader and write nothing.
package proxyuser

import (
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
}

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
	if rolesyncv1.OverrideSet(in.Override) {
		return Decision{Resolution: rolemap.Resolve(in.Namespace, in.Override, nil)}
	}
	evaluate := func(claims map[string]any) Decision {
		d := in.Engine.Evaluate(claims, in.Issuer)
		return Decision{Resolution: rolemap.Resolve(in.Namespace, nil, &d), Engine: d}
	}
	if in.Login == nil {
		return evaluate(in.Stored)
	}
	login := evaluate(in.Login)
	if !in.Existing {
		return login
	}
	if in.Stale {
		stored := evaluate(in.Stored)
		out := stored
		if login.Denied || login.Role.Rank() < stored.Role.Rank() {
			out = login
		}
		out.KeepStored = true
		return out
	}
	if login.Engine.SyncPolicy == rolesyncv1.SyncPolicyFirstLoginOnly {
		out := evaluate(in.Stored)
		out.KeepStored = true
		return out
	}
	return login
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
