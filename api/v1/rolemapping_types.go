package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Resolution says how a RoleMapping picks one role when several rules match.
// +kubebuilder:validation:Enum=HighestPrivilege;FirstMatch
type Resolution string

const (
	// ResolutionHighestPrivilege grants the most privileged matching rule's role.
	ResolutionHighestPrivilege Resolution = "HighestPrivilege"
	// ResolutionFirstMatch grants the first matching rule's role in rule order,
	// as LiteLLM's jwt_litellm_role_map does.
	ResolutionFirstMatch Resolution = "FirstMatch"
)

// OnNoMatch says what a RoleMapping decides when none of its rules match.
// +kubebuilder:validation:Enum=Default;Deny
type OnNoMatch string

const (
	// OnNoMatchDefault grants spec.defaultRole.
	OnNoMatchDefault OnNoMatch = "Default"
	// OnNoMatchDeny refuses the login.
	OnNoMatchDeny OnNoMatch = "Deny"
)

// SyncPolicy says which logins update a user's stored claims.
// +kubebuilder:validation:Enum=EveryLogin;FirstLoginOnly
type SyncPolicy string

const (
	// SyncPolicyEveryLogin stores the claims of every login.
	SyncPolicyEveryLogin SyncPolicy = "EveryLogin"
	// SyncPolicyFirstLoginOnly stores claims at the first login only; later
	// logins keep the stored claims (an admin edits them on the ProxyUser).
	SyncPolicyFirstLoginOnly SyncPolicy = "FirstLoginOnly"
)

// TeamRole is a member's role in a LiteLLM team.
// +kubebuilder:validation:Enum=user;admin
type TeamRole string

const (
	// TeamRoleUser is a team member.
	TeamRoleUser TeamRole = "user"
	// TeamRoleAdmin manages the team's members, keys and settings.
	TeamRoleAdmin TeamRole = "admin"
)

// Rank orders team roles: admin above user, 0 for an unknown value.
func (r TeamRole) Rank() int {
	switch r {
	case TeamRoleUser, "":
		return 1
	case TeamRoleAdmin:
		return 2
	}
	return 0
}

// TeamSync says whether a mapping only adds team memberships or keeps them
// exact.
// +kubebuilder:validation:Enum=Additive;Exact
type TeamSync string

const (
	// TeamSyncAdditive adds the memberships the rules grant and never
	// removes one.
	TeamSyncAdditive TeamSync = "Additive"
	// TeamSyncExact also removes the user from owned teams (allowedTeams)
	// that no rule grants any more. Teams the mapping does not own are never
	// touched.
	TeamSyncExact TeamSync = "Exact"
)

// ClaimMatcher is how a role rule or a team rule matches the claims: one
// of equals, glob, regex and expression (the rule types' validation rules
// require exactly one), with the claim path, case folding and splitting
// the first three apply. RoleRule and TeamRule embed it, so the two kinds
// of rule match alike and say so once.
type ClaimMatcher struct {
	// claim is the claim path this rule reads, overriding spec.claim: keys
	// separated by dots, `\.` for a literal dot, `[n]` to index a list
	// (for example `resource_access.litellm.roles`).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Claim string `json:"claim,omitempty"`

	// equals matches a claim value exactly.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Equals *string `json:"equals,omitempty"`

	// glob matches a claim value with fnmatch patterns as LiteLLM uses them:
	// `*` any run of characters (including `/`), `?` one character, `[...]` a class.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Glob *string `json:"glob,omitempty"`

	// regex matches a claim value with an RE2 regular expression anchored to
	// the whole value. In a team rule its captures are $1 to $9 in team.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Regex *string `json:"regex,omitempty"`

	// expression is a CEL expression over `claims` (the decoded token claims)
	// that returns a bool, for example `'admins' in claims.groups && claims.email_verified`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression *string `json:"expression,omitempty"`

	// caseInsensitive makes equals, glob and regex ignore case.
	// +optional
	CaseInsensitive bool `json:"caseInsensitive,omitempty"`

	// split splits a string claim value on this separator before matching,
	// for example " " for an OAuth `scope` string.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16
	Split string `json:"split,omitempty"`
}

// TeamRule grants a LiteLLM team membership to the users whose claims it
// matches. Exactly one of equals, glob, regex and expression is set.
//
// +kubebuilder:validation:XValidation:rule="[has(self.equals), has(self.glob), has(self.regex), has(self.expression)].filter(x, x).size() == 1",message="exactly one of equals, glob, regex or expression must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.expression) || (!has(self.claim) && !has(self.split) && !has(self.caseInsensitive))",message="claim, split and caseInsensitive do not apply to an expression rule"
// +kubebuilder:validation:XValidation:rule="has(self.regex) || !self.team.matches('[$][1-9]')",message="$1 to $9 are the captures of a regex rule",fieldPath=".team"
// +kubebuilder:validation:XValidation:rule="!has(self.expression) || !self.team.matches('[$][0-9]')",message="an expression rule has no matched value: its team cannot use $0 to $9",fieldPath=".team"
type TeamRule struct {
	// The claim matcher: exactly one of equals, glob, regex, expression.
	ClaimMatcher `json:",inline"`

	// team is the LiteLLM team_id granted. `$0` is the matched claim value
	// and `$1` to `$9` the captures of a regex rule, for example
	// `ai-$1` with regex `/ai/(.+)`. The team must be one of allowedTeams
	// (checked here when literal; when templated, a result outside them is
	// dropped and reported). `$$` is a literal `$`.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Team string `json:"team"`

	// teamRole is the member's role in the team: user (default) or admin.
	// +optional
	// +kubebuilder:default=user
	TeamRole TeamRole `json:"teamRole,omitempty"`
}

// RoleRule maps claim values to a role. Exactly one of equals, glob, regex
// and expression is set.
//
// +kubebuilder:validation:XValidation:rule="[has(self.equals), has(self.glob), has(self.regex), has(self.expression)].filter(x, x).size() == 1",message="exactly one of equals, glob, regex or expression must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.expression) || (!has(self.claim) && !has(self.split) && !has(self.caseInsensitive))",message="claim, split and caseInsensitive do not apply to an expression rule"
type RoleRule struct {
	// The claim matcher: exactly one of equals, glob, regex, expression.
	ClaimMatcher `json:",inline"`

	// role is the role this rule grants when it matches.
	// +required
	Role Role `json:"role"`
}

// RoleMappingSpec is the claim-to-role table of one namespace's users.
//
// +kubebuilder:validation:XValidation:rule="self.onNoMatch != 'Default' || has(self.defaultRole)",message="defaultRole is required when onNoMatch is Default",fieldPath=".defaultRole"
// +kubebuilder:validation:XValidation:rule="!has(self.maxRole) || !has(self.defaultRole) || {'proxy_admin': 4, 'proxy_admin_viewer': 3, 'internal_user': 2, 'internal_user_viewer': 1}[self.defaultRole] <= {'proxy_admin': 4, 'proxy_admin_viewer': 3, 'internal_user': 2, 'internal_user_viewer': 1}[self.maxRole]",message="defaultRole is above maxRole",fieldPath=".defaultRole"
// +kubebuilder:validation:XValidation:rule="!has(self.maxRole) || !has(self.rules) || self.rules.all(r, {'proxy_admin': 4, 'proxy_admin_viewer': 3, 'internal_user': 2, 'internal_user_viewer': 1}[r.role] <= {'proxy_admin': 4, 'proxy_admin_viewer': 3, 'internal_user': 2, 'internal_user_viewer': 1}[self.maxRole])",message="a rule grants a role above maxRole",fieldPath=".rules"
// +kubebuilder:validation:XValidation:rule="has(self.claim) || !has(self.rules) || self.rules.all(r, has(r.expression) || has(r.claim))",message="a rule without expression needs a claim path: set rules[].claim or spec.claim",fieldPath=".rules"
// +kubebuilder:validation:XValidation:rule="has(self.claim) || !has(self.teams) || self.teams.all(r, has(r.expression) || has(r.claim))",message="a team rule without expression needs a claim path: set teams[].claim or spec.claim",fieldPath=".teams"
// +kubebuilder:validation:XValidation:rule="!has(self.teams) || size(self.teams) == 0 || (has(self.allowedTeams) && size(self.allowedTeams) > 0)",message="team rules need allowedTeams: the globs of the team ids this mapping owns",fieldPath=".allowedTeams"
type RoleMappingSpec struct {
	// issuer limits this mapping to logins from this identity provider issuer
	// URL. Empty applies to every issuer.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer,omitempty"`

	// priority orders mappings of one namespace: the highest-priority mapping
	// with a matching rule decides. Default 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Priority int32 `json:"priority,omitempty"`

	// claim is the default claim path of rules that do not set their own,
	// for example `groups` or `resource_access.litellm.roles`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Claim string `json:"claim,omitempty"`

	// rules map claim values to roles, in order.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Rules []RoleRule `json:"rules,omitempty"`

	// resolution picks one role when several rules match: HighestPrivilege
	// (default) or FirstMatch (rule order, as LiteLLM's jwt_litellm_role_map).
	// +optional
	// +kubebuilder:default=HighestPrivilege
	Resolution Resolution `json:"resolution,omitempty"`

	// onNoMatch decides a user no rule matches: Default grants defaultRole,
	// Deny (default) refuses the login.
	// +optional
	// +kubebuilder:default=Deny
	OnNoMatch OnNoMatch `json:"onNoMatch,omitempty"`

	// defaultRole is granted when no rule matches and onNoMatch is Default.
	// +optional
	DefaultRole *Role `json:"defaultRole,omitempty"`

	// syncPolicy says which logins update a user's stored claims:
	// EveryLogin (default) or FirstLoginOnly.
	// +optional
	// +kubebuilder:default=EveryLogin
	SyncPolicy SyncPolicy `json:"syncPolicy,omitempty"`

	// maxRole is the highest role this mapping may grant: no rule and no
	// defaultRole may be above it.
	// +optional
	MaxRole *Role `json:"maxRole,omitempty"`

	// teams grant LiteLLM team memberships: every matching rule of every
	// applicable mapping applies (a union); when two grant the same team,
	// the higher teamRole wins.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Teams []TeamRule `json:"teams,omitempty"`

	// allowedTeams are globs of the team ids this mapping owns: its rules may
	// only grant these, and teamSync Exact only ever removes members from
	// these.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	AllowedTeams []string `json:"allowedTeams,omitempty"`

	// keepClaims are claim paths the login server stores on ProxyUsers
	// besides those the rules read: store a claim before a rule reads it,
	// so that `rolesync diff` of that rule knows every user's value instead
	// of reporting "outcome unknown at next login".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	KeepClaims []string `json:"keepClaims,omitempty"`

	// maxClaimAge: when the newest statement about a user's claims (a
	// login, or a directory update) is older than this, this mapping's
	// rules no longer match them and the user falls to its onNoMatch with
	// reason ClaimsExpired. At least 10s; unset means claims never expire.
	// Each user is re-decided when its claims expire.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="maxClaimAge must be at least 10s"
	MaxClaimAge *metav1.Duration `json:"maxClaimAge,omitempty"`

	// teamSync: Additive (default) adds memberships and never removes one;
	// Exact also removes the user from owned teams no rule grants any more.
	// +optional
	// +kubebuilder:default=Additive
	TeamSync TeamSync `json:"teamSync,omitempty"`
}

// RoleMappingStatus is the observed state of a RoleMapping.
type RoleMappingStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (reason InvalidSpec with the offending field when the
	// mapping cannot be compiled).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// rules is the number of rules compiled from the spec.
	// +optional
	Rules int32 `json:"rules,omitempty"`

	// users is the number of ProxyUsers whose role this mapping currently decides.
	// +optional
	Users int32 `json:"users,omitempty"`

	// generationInForce is the generation of the spec the engine decides
	// with: observedGeneration when Ready, the last valid one while the
	// newest spec is invalid (an invalid edit never widens access), 0 when no
	// generation was ever valid (then the mapping decides nothing).
	// +optional
	GenerationInForce int64 `json:"generationInForce,omitempty"`

	// lastValidSpec is the gzip-compressed JSON of the spec at
	// generationInForce, so a restarted manager (or another replica) keeps
	// deciding with it while the newest spec is invalid. Absent when it would
	// exceed 256 KiB compressed.
	// +optional
	// +kubebuilder:validation:MaxLength=349528
	LastValidSpec []byte `json:"lastValidSpec,omitempty"`

	// heldGeneration is a valid generation the mass-change brake holds: it
	// would deny or demote more of the namespace's users than the brake
	// allows (--brake-percent, --brake-min-users). generationInForce keeps
	// deciding until the annotation rolesync.dev/confirm-generation names it.
	// +optional
	HeldGeneration int64 `json:"heldGeneration,omitempty"`

	// heldUsers is how many users the held generation would deny or demote.
	// +optional
	HeldUsers int32 `json:"heldUsers,omitempty"`
}

// ConfirmGenerationAnnotation on a RoleMapping releases the generation it
// names from the mass-change brake (status.heldGeneration).
const ConfirmGenerationAnnotation = "rolesync.dev/confirm-generation"

// RoleMapping maps the claims of SSO logins to LiteLLM proxy roles for the
// ProxyUsers of its namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rm;rolemap,categories=rolesync
// +kubebuilder:printcolumn:name="Priority",type=integer,JSONPath=".spec.priority"
// +kubebuilder:printcolumn:name="Rules",type=integer,JSONPath=".status.rules"
// +kubebuilder:printcolumn:name="Users",type=integer,JSONPath=".status.users",priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="In Force",type=integer,JSONPath=".status.generationInForce",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type RoleMapping struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the claim-to-role table.
	// +required
	Spec RoleMappingSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status RoleMappingStatus `json:"status,omitempty"`
}

// RoleMappingList is a list of RoleMappings.
//
// +kubebuilder:object:root=true
type RoleMappingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RoleMapping `json:"items"`
}

// GetResolution returns spec.resolution, HighestPrivilege when unset.
func (m *RoleMapping) GetResolution() Resolution {
	if m.Spec.Resolution == "" {
		return ResolutionHighestPrivilege
	}
	return m.Spec.Resolution
}

// GetOnNoMatch returns spec.onNoMatch, Deny when unset.
func (m *RoleMapping) GetOnNoMatch() OnNoMatch {
	if m.Spec.OnNoMatch == "" {
		return OnNoMatchDeny
	}
	return m.Spec.OnNoMatch
}

// GetTeamSync returns spec.teamSync, Additive when unset.
func (m *RoleMapping) GetTeamSync() TeamSync {
	if m.Spec.TeamSync == "" {
		return TeamSyncAdditive
	}
	return m.Spec.TeamSync
}

// TeamClaim returns the claim path team rule i reads: its own, else spec.claim.
func (m *RoleMapping) TeamClaim(i int) string {
	if c := m.Spec.Teams[i].Claim; c != "" {
		return c
	}
	return m.Spec.Claim
}

// GetSyncPolicy returns spec.syncPolicy, EveryLogin when unset.
func (m *RoleMapping) GetSyncPolicy() SyncPolicy {
	if m.Spec.SyncPolicy == "" {
		return SyncPolicyEveryLogin
	}
	return m.Spec.SyncPolicy
}

// RuleClaim returns the claim path rule i reads: its own, else spec.claim.
func (m *RoleMapping) RuleClaim(i int) string {
	if c := m.Spec.Rules[i].Claim; c != "" {
		return c
	}
	return m.Spec.Claim
}
