package v1

// Limits on a RoleMapping, declared once. The CRD's markers in
// rolemapping_types.go repeat them (markers cannot name a constant);
// TestCRDAgreesWithLimits checks the generated CRD against these values, and
// internal/rolemap, internal/glob and internal/claimpath enforce them when
// compiling, so the CLI (which has no apiserver) refuses the same mappings.
const (
	MaxRules            = 1000 // spec.rules
	MaxPatternLength    = 1024 // equals, glob, regex (bytes)
	MaxExpressionLength = 4096 // expression (bytes)
	MaxClaimPathLength  = 256  // claim (bytes)
	MaxIssuerLength     = 1024 // issuer (bytes)
	MaxSplitLength      = 16   // split (bytes)
	MaxPriority         = 1000 // priority
	MaxTeamRules        = 1000 // spec.teams
	MaxAllowedTeams     = 64   // spec.allowedTeams
	MaxTeamLength       = 256  // teams[].team, allowedTeams[] (bytes)
)
