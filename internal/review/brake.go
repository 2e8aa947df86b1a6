package review

// Brake is the mass-change brake: a RoleMapping edit that would deny or
// demote at least Threshold(users) of a namespace's users is held until an
// admin confirms it (in the spirit of Entra provisioning's accidental
// deletion threshold). The controller holds such an edit; rolesync diff
// says when one would be held.
type Brake struct {
	// Percent of the namespace's users; 0 turns the brake off.
	Percent int
	// MinUsers is the least number of users that trips it, however small
	// the namespace.
	MinUsers int
}

// DefaultBrake is the brake the manager and rolesync diff use by default.
var DefaultBrake = Brake{Percent: 10, MinUsers: 10}

// Threshold is how many denied or demoted users (of users) trip the brake;
// 0 when it is off.
func (b Brake) Threshold(users int) int {
	if b.Percent <= 0 {
		return 0
	}
	t := (users*b.Percent + 99) / 100 // rounded up
	return max(t, b.MinUsers, 1)
}

// Trips reports whether lost denied or demoted users of users trip it.
func (b Brake) Trips(lost, users int) bool {
	t := b.Threshold(users)
	return t > 0 && lost >= t
}

// Loss reports whether a change takes privilege away: allowed before and
// denied now, or a lower role (overrides are never changes). It is the
// converse of Gain on the same privilege order (Outcome.rank).
func (c Change) Loss() bool { return c.New.rank() < c.Old.rank() }

// Losses counts the changes that take privilege away, per namespace.
func (r Report) Losses() map[string]int {
	out := map[string]int{}
	for _, c := range r.Changes {
		if c.Loss() {
			out[c.Namespace]++
		}
	}
	return out
}
