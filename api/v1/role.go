package v1

// Role is a LiteLLM user role (LitellmUserRoles) that a user row may hold.
// +kubebuilder:validation:Enum=proxy_admin;proxy_admin_viewer;internal_user;internal_user_viewer
type Role string

// The four roles a LiteLLM user row may hold, from the most to the least privileged.
const (
	RoleProxyAdmin         Role = "proxy_admin"
	RoleProxyAdminViewer   Role = "proxy_admin_viewer"
	RoleInternalUser       Role = "internal_user"
	RoleInternalUserViewer Role = "internal_user_viewer"
)

// DefaultSSORole is the role LiteLLM gives an SSO user it knows nothing about;
// the Downgrade deletion policy writes it.
const DefaultSSORole = RoleInternalUserViewer

// Rank orders roles by privilege: proxy_admin (4) > proxy_admin_viewer (3) >
// internal_user (2) > internal_user_viewer (1). An unknown role ranks 0.
func (r Role) Rank() int {
	switch r {
	case RoleProxyAdmin:
		return 4
	case RoleProxyAdminViewer:
		return 3
	case RoleInternalUser:
		return 2
	case RoleInternalUserViewer:
		return 1
	}
	return 0
}

// Valid reports whether r is one of the four user roles.
func (r Role) Valid() bool { return r.Rank() > 0 }

// Roles lists every valid role, most privileged first.
func Roles() []Role {
	return []Role{RoleProxyAdmin, RoleProxyAdminViewer, RoleInternalUser, RoleInternalUserViewer}
}

// OverrideSet reports whether an optional role (spec.roleOverride) is set:
// nil and the empty string both mean "no override". The one definition,
// used by the decision, the review and the CLI.
func OverrideSet(r *Role) bool { return r != nil && *r != "" }
