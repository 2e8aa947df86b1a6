package v1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeletionPolicy says what happens to the proxy's user row when the ProxyUser is deleted.
// +kubebuilder:validation:Enum=Retain;Downgrade;Delete
type DeletionPolicy string

const (
	// DeletionPolicyRetain leaves the row as it is.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDowngrade sets the row's role to internal_user_viewer.
	DeletionPolicyDowngrade DeletionPolicy = "Downgrade"
	// DeletionPolicyDelete deletes the row.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// ProxyUserSpec is one LiteLLM proxy user as its logins describe it.
type ProxyUserSpec struct {
	// userID is the LiteLLM user_id (the primary key of LiteLLM_UserTable).
	// It cannot change after creation.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="userID is immutable"
	UserID string `json:"userID"`

	// email is the user's email address, written to the row when it has none.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	Email string `json:"email,omitempty"`

	// issuer is the identity provider issuer URL of the user's logins.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`

	// claims are the login's decoded token claims, reduced to the paths the
	// namespace's RoleMappings read. Never a token or a signature.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:Schemaless
	Claims *apiextensionsv1.JSON `json:"claims,omitempty"`

	// lastLoginTime is the time of the newest login event applied, with
	// microseconds, so logins in the same second keep their order.
	// +optional
	LastLoginTime *metav1.MicroTime `json:"lastLoginTime,omitempty"`

	// recentLogins are the logins recorded on this object in the last 10
	// minutes (the replay window), newest last: a digest of each login's
	// replay id (never the event or token) and when it was received. A
	// login whose digest is here is refused as a replay by every replica.
	// Written by the login server.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	RecentLogins []LoginRecord `json:"recentLogins,omitempty"`

	// directory is what the identity provider's directory (SCIM) says about
	// the user; set when a SCIM user was created for, or bound to, this
	// ProxyUser. Its SCIM id is this object's name.
	// +optional
	Directory *DirectoryUser `json:"directory,omitempty"`

	// roleOverride pins the user's role, ignoring RoleMappings (a cluster
	// admin's decision; it may exceed any mapping's maxRole).
	// +optional
	RoleOverride *Role `json:"roleOverride,omitempty"`

	// deletionPolicy says what happens to the proxy's row when this object is
	// deleted: Retain (default), Downgrade (to internal_user_viewer) or Delete.
	// +optional
	// +kubebuilder:default=Retain
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// LoginRecord is one login recorded on a ProxyUser.
type LoginRecord struct {
	// digest is the base64url of the first 16 bytes of the SHA-256 of the
	// login's replay id.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Digest string `json:"digest"`
	// receivedAt is when the login server received the login.
	// +required
	ReceivedAt metav1.MicroTime `json:"receivedAt"`
}

// SourceType says where a user's role came from.
// +kubebuilder:validation:Enum=RoleMapping;Default;Override
type SourceType string

const (
	// SourceRoleMapping means a rule of a RoleMapping matched.
	SourceRoleMapping SourceType = "RoleMapping"
	// SourceDefault means no rule matched: the deciding mapping's defaultRole.
	SourceDefault SourceType = "Default"
	// SourceOverride means spec.roleOverride.
	SourceOverride SourceType = "Override"
)

// RoleSource explains why a user holds a role.
type RoleSource struct {
	// type is RoleMapping, Default or Override.
	// +required
	Type SourceType `json:"type"`

	// roleMapping is the deciding RoleMapping's name (same namespace).
	// +optional
	RoleMapping string `json:"roleMapping,omitempty"`

	// rule is the index of the matching rule in the RoleMapping's spec.rules.
	// +optional
	Rule *int32 `json:"rule,omitempty"`

	// claim is the claim path the rule read.
	// +optional
	Claim string `json:"claim,omitempty"`

	// value is the claim value that matched.
	// +optional
	Value string `json:"value,omitempty"`

	// description is a one-line summary, for example
	// `keycloak#0 resource_access.litellm.roles=admin`.
	// +optional
	Description string `json:"description,omitempty"`

	// fromDirectory: the claim value that matched came from the identity
	// provider's directory (SCIM groups), not from a login.
	// +optional
	FromDirectory bool `json:"fromDirectory,omitempty"`
}

// TeamMembership is one team a user is granted.
type TeamMembership struct {
	// team is the LiteLLM team_id.
	// +kubebuilder:validation:MaxLength=256
	Team string `json:"team"`
	// role is the member's role in the team.
	Role TeamRole `json:"role"`
	// source is the rule that grants it, for example
	// `keycloak#teams[0] groups=/ai/search`.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Source string `json:"source,omitempty"`
}

// +structType=atomic

// ProxyUserStatus is the observed state of a ProxyUser.
//
// The controller is its one writer, so the apiserver tracks it as one
// field (x-kubernetes-map-type: atomic, the marker above): the managed
// fields of a ProxyUser name `f:status` once instead of each condition,
// team and source field. At 100,000 users those entries, decoded in the
// apiserver's watch cache, were 45% of its heap (docs/benchmarks.md).
type ProxyUserStatus struct {
	// role is the resolved role.
	// +optional
	Role Role `json:"role,omitempty"`

	// source says why the user holds status.role.
	// +optional
	Source *RoleSource `json:"source,omitempty"`

	// syncedRole is the role last written to (or confirmed in) the proxy database.
	// +optional
	SyncedRole Role `json:"syncedRole,omitempty"`

	// databaseUserID is the user_id of the LiteLLM_UserTable row this user is
	// bound to: the row LiteLLM itself uses for the SSO id (by user_id, else
	// sso_user_id, else the one row with the email). It differs from
	// spec.userID for invited users, whose row has a UUID key.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DatabaseUserID string `json:"databaseUserID,omitempty"`

	// deactivated is true when the bound LiteLLM row is deactivated
	// (metadata.scim_active false): LiteLLM refuses every key of the user
	// (401), whatever door they use. rolesync deactivates a denied user and
	// lifts only its own deactivation when a role is granted again; LiteLLM's
	// SCIM may deactivate a user too.
	// +optional
	Deactivated bool `json:"deactivated,omitempty"`

	// lastSyncTime is when the database was last written or confirmed.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// inForceBy is when the last database write is in force in LiteLLM at
	// the latest: lastSyncTime plus LiteLLM's user cache TTL
	// (--litellm-cache-ttl, its general_settings.user_api_key_cache_ttl).
	// LiteLLM serves user, team and key objects from that cache, and a
	// database write cannot evict them.
	// +optional
	InForceBy *metav1.Time `json:"inForceBy,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// teams are the LiteLLM team memberships the RoleMappings grant the
	// user, each with the rule that grants it.
	// +optional
	// +listType=map
	// +listMapKey=team
	// +kubebuilder:validation:MaxItems=256
	Teams []TeamMembership `json:"teams,omitempty"`

	// conditions: Ready, Synced, Drifted, Denied, DeleteBlocked, TeamsSynced.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ProxyUser is one user of a LiteLLM proxy: what their logins said, which
// role they hold and why, and whether the proxy's database agrees.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pu,categories=rolesync
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=".spec.userID"
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=".status.role"
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=".status.source.description"
// +kubebuilder:printcolumn:name="Synced",type=string,JSONPath=".status.conditions[?(@.type==\"Synced\")].status"
// +kubebuilder:printcolumn:name="Row",type=string,JSONPath=".status.databaseUserID",priority=1
// +kubebuilder:printcolumn:name="Teams",type=string,JSONPath=".status.teams[*].team",priority=1
// +kubebuilder:printcolumn:name="Deactivated",type=boolean,JSONPath=".status.deactivated",priority=1
// +kubebuilder:printcolumn:name="Directory",type=boolean,JSONPath=".spec.directory.active",priority=1
// +kubebuilder:printcolumn:name="Last Login",type=date,JSONPath=".spec.lastLoginTime"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type ProxyUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the user as its logins and admins describe it.
	// +required
	Spec ProxyUserSpec `json:"spec"`

	// status is the resolved role and its sync state.
	// +optional
	Status ProxyUserStatus `json:"status,omitempty"`
}

// ProxyUserList is a list of ProxyUsers.
//
// +kubebuilder:object:root=true
type ProxyUserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProxyUser `json:"items"`
}

// GetDeletionPolicy returns spec.deletionPolicy, Retain when unset.
func (u *ProxyUser) GetDeletionPolicy() DeletionPolicy {
	if u.Spec.DeletionPolicy == "" {
		return DeletionPolicyRetain
	}
	return u.Spec.DeletionPolicy
}

// CreatedBefore orders ProxyUsers by creation time, then namespace and
// name: of two duplicates (or two users of one row), the one created first
// owns the user.
func (u *ProxyUser) CreatedBefore(o *ProxyUser) bool {
	if !u.CreationTimestamp.Equal(&o.CreationTimestamp) {
		return u.CreationTimestamp.Before(&o.CreationTimestamp)
	}
	if u.Namespace != o.Namespace { // creation times have second precision
		return u.Namespace < o.Namespace
	}
	return u.Name < o.Name
}
