package v1

// Condition types used on RoleMapping and ProxyUser status. Each has one
// writer: the leader's RoleMapping controller writes a RoleMapping's status
// (every replica loads mappings for its login server; only the leader
// writes, with a resourceVersion precondition); the ProxyUser controller
// writes every ProxyUser condition (Ready, Synced, Drifted, Denied,
// DeleteBlocked, TeamsSynced), all through the pure setters of
// internal/proxyuser, Ready last as the summary of the others
// (proxyuser.ReadySteps). The login server writes ProxyUser spec only
// (claims, login time): the controller derives conditions from it.
const (
	// ConditionReady is True when the object is valid and fully reconciled.
	ConditionReady = "Ready"
	// ConditionSynced (ProxyUser) is True when the proxy database holds status.role.
	ConditionSynced = "Synced"
	// ConditionDrifted (ProxyUser) is True when the database role differs from
	// status.role and the drift policy only reports it.
	ConditionDrifted = "Drifted"
	// ConditionDenied (ProxyUser) is True when no mapping grants the user a role.
	ConditionDenied = "Denied"
	// ConditionDeleteBlocked (ProxyUser) is True while deletionPolicy Delete
	// cannot remove the row because other rows still reference the user.
	ConditionDeleteBlocked = "DeleteBlocked"
	// ConditionTeamsSynced (ProxyUser) is True when LiteLLM's team rosters
	// hold status.teams (reason TeamNotFound names teams that do not exist).
	ConditionTeamsSynced = "TeamsSynced"
)

// Condition reasons. Reasons are CamelCase and machine readable; the
// condition message carries the human explanation.
const (
	// ReasonValid: the RoleMapping compiled and is in use.
	ReasonValid = "Valid"
	// ReasonInvalidSpec: the spec can never work; the message names the field.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonMassChangeHeld: a valid generation would deny or demote more
	// users than the mass-change brake allows; the previous generation stays
	// in force until the rolesync.dev/confirm-generation annotation names it.
	ReasonMassChangeHeld = "MassChangeHeld"
	// ReasonResolved: a role was resolved for the user.
	ReasonResolved = "Resolved"
	// ReasonOverride: the role comes from spec.roleOverride.
	ReasonOverride = "Override"
	// ReasonNoRoleMapping: no RoleMapping applies to the user's issuer.
	ReasonNoRoleMapping = "NoRoleMapping"
	// ReasonNoMatch: no rule matched and the deciding mapping denies.
	ReasonNoMatch = "NoMatch"
	// ReasonDeprovisioned (Denied): the identity provider's directory
	// deprovisioned the user (SCIM active=false, or the user deleted).
	ReasonDeprovisioned = "Deprovisioned"
	// ReasonClaimsExpired (Denied, or the mapping's default role): the
	// newest statement about the user's claims is older than the deciding
	// mapping's maxClaimAge.
	ReasonClaimsExpired = "ClaimsExpired"
	// ReasonAllowed: the user is not denied.
	ReasonAllowed = "Allowed"
	// ReasonDuplicateUser: another, older ProxyUser has the same userID and issuer.
	ReasonDuplicateUser = "DuplicateUser"
	// ReasonNoDatabase: the operator runs without a database; nothing is synced.
	ReasonNoDatabase = "NoDatabase"
	// ReasonSynced: the database row holds the resolved role.
	ReasonSynced = "Synced"
	// ReasonSyncFailed: writing the database failed; it is retried with backoff.
	ReasonSyncFailed = "SyncFailed"
	// ReasonNoDrift: the database role equals status.role.
	ReasonNoDrift = "NoDrift"
	// ReasonDriftDetected: the database role differs and the policy is Report.
	ReasonDriftDetected = "DriftDetected"
	// ReasonDriftCorrected: the database role differed and was rewritten.
	ReasonDriftCorrected = "DriftCorrected"
	// ReasonRoleChanged: the resolved role changed (Event reason).
	ReasonRoleChanged = "RoleChanged"
	// ReasonUsersMoved (an Event on a RoleMapping) sums up the users a
	// RoleMapping change moved, instead of one RoleChanged Event per user.
	ReasonUsersMoved = "UsersMoved"
	// ReasonTeamNotFound: a granted team does not exist in LiteLLM (it is
	// never created); retried until it appears.
	ReasonTeamNotFound = "TeamNotFound"
	// ReasonTeamsSynced: every granted membership is in LiteLLM.
	ReasonTeamsSynced = "TeamsSynced"
	// ReasonTeamNotAllowed: a templated team fell outside the mapping's
	// allowedTeams and was dropped (an Event and the condition message name it).
	ReasonTeamNotAllowed = "TeamNotAllowed"
	// ReasonDeleteFailed: the deletion policy could not be applied yet.
	ReasonDeleteFailed = "DeleteFailed"
	// ReasonDeleteBlocked: rows of another table (named in the message)
	// reference the user; the finalizer stays and the delete is retried.
	ReasonDeleteBlocked = "DeleteBlocked"
	// ReasonAmbiguousUser: several LiteLLM rows share the user's email and
	// none has the user's id; rolesync writes none of them.
	ReasonAmbiguousUser = "AmbiguousUser"
	// ReasonWaitingForRow: the user arrived through a login and LiteLLM has
	// not created its row yet (LiteLLM inserts it right after the login hook).
	ReasonWaitingForRow = "WaitingForRow"
	// ReasonUnmanagedRole: the row holds a role rolesync never grants
	// (org_admin, team, customer); it is left alone.
	ReasonUnmanagedRole = "UnmanagedRole"
	// ReasonRowConflict: an older ProxyUser with the same userID, in another
	// namespace or issuer, writes the LiteLLM row; this one is not synced.
	ReasonRowConflict = "RowConflict"
	// ReasonCompetingWriter: the row drifted again soon after each
	// correction: another writer (LiteLLM's own role mapping) is active.
	ReasonCompetingWriter = "CompetingWriter"
)
