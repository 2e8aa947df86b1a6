package rolemap

import (
	"strings"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// Resolution is a user's role as ProxyUser status and the login server
// report it: an admin's override, or a decision, with the source in the
// user's own namespace.
type Resolution struct {
	Role    rolesyncv1.Role // "" when denied
	Denied  bool
	Reason  string // condition reason: Resolved, Override, NoMatch or NoRoleMapping
	Message string
	Source  *rolesyncv1.RoleSource // nil when denied
}

// Resolve returns the override when it is set (d may then be nil), else
// the decision d for a user of namespace.
func Resolve(namespace string, override *rolesyncv1.Role, d *Decision) Resolution {
	if rolesyncv1.OverrideSet(override) {
		src := &rolesyncv1.RoleSource{Type: rolesyncv1.SourceOverride, Description: "override"}
		return Resolution{Role: *override, Reason: rolesyncv1.ReasonOverride, Message: "role " + string(*override) + " from spec.roleOverride", Source: src}
	}
	if d.Denied { // d.Reason is the condition reason: NoMatch or NoRoleMapping
		return Resolution{Denied: true, Reason: d.Reason, Message: strings.ReplaceAll(d.Message(), namespace+"/", "")}
	}
	s := d.Source
	s.RoleMapping = strings.TrimPrefix(s.RoleMapping, namespace+"/") // a user's mappings live in its namespace
	src := &rolesyncv1.RoleSource{Type: s.Type, RoleMapping: s.RoleMapping, Claim: s.Claim, Value: rolesyncv1.Truncate(s.Value, 256), Description: rolesyncv1.Truncate(s.Describe(), 512)}
	if s.Rule >= 0 {
		rule := int32(s.Rule)
		src.Rule = &rule
	}
	return Resolution{Role: d.Role, Reason: rolesyncv1.ReasonResolved, Message: "role " + string(d.Role) + ": " + src.Description, Source: src}
}

// RowRole is the role the proxy's database row must hold: a denied user
// keeps no privilege, so an existing row falls to the lowest role.
func (r Resolution) RowRole() rolesyncv1.Role {
	if r.Denied {
		return rolesyncv1.RoleInternalUserViewer
	}
	return r.Role
}
