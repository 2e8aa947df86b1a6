// Package review answers the question a reviewer of a RoleMapping change
// asks: what does it do to the users we have? It decides every user's role
// twice, under the mappings in force and under the proposed ones, with the
// one decision the controller and the login server make
// (proxyuser.Decide, on the claims each ProxyUser stores), and reports who
// moves, who gains privilege, and how many take each transition. Pure: no
// I/O; cmd/rolesync reads the files or the cluster.
package review

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// Outcome is one decision of a user's role.
type Outcome struct {
	Role   rolesyncv1.Role `json:"role,omitempty"`
	Denied bool            `json:"denied"`
	Reason string          `json:"reason"`
	// Source names what decided: "keycloak#2 groups=/ai/team" or
	// "roleOverride"; empty when denied.
	Source string `json:"source,omitempty"`

	mapping string
	rule    int32
}

// String is the role, or "denied (Reason)".
func (o Outcome) String() string {
	if o.Denied {
		return "denied (" + o.Reason + ")"
	}
	return string(o.Role)
}

// rank orders outcomes by privilege: denied below every role.
func (o Outcome) rank() int {
	if o.Denied {
		return -1
	}
	return o.Role.Rank()
}

// Change is a user whose decision changes.
type Change struct {
	Namespace string  `json:"namespace"`
	Name      string  `json:"name"`
	UserID    string  `json:"userID"`
	Issuer    string  `json:"issuer,omitempty"`
	Old       Outcome `json:"old"`
	New       Outcome `json:"new"`
	// Gain: the user gains privilege (denied -> allowed, or a higher role).
	Gain bool `json:"gain"`
	// TeamGain: the user joins a LiteLLM team or becomes a team's admin.
	TeamGain bool `json:"teamGain"`
	// TeamsGained and TeamsLost are LiteLLM team memberships ("team (role)")
	// the change grants or takes away (removed from LiteLLM only where the
	// owning mapping's teamSync is Exact).
	TeamsGained []string `json:"teamsGained,omitempty"`
	TeamsLost   []string `json:"teamsLost,omitempty"`
}

// Transition counts the users that move from one outcome to another.
type Transition struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Users int    `json:"users"`
	Gain  bool   `json:"gain"`
}

// Report is the result of a review.
type Report struct {
	// Users is how many users were decided.
	Users int `json:"users"`
	// Changes are the users whose decision changes, privilege gains first
	// (gains to proxy_admin first of all), then by namespace and name.
	Changes []Change `json:"changes"`
	// Transitions count the changes per (old, new) outcome, gains first.
	Transitions []Transition `json:"transitions"`
	// Overridden are users whose spec.roleOverride decides: unaffected by
	// any mapping. Listed when their claims alone would decide differently
	// (Old and New are then the claims' decisions).
	Overridden []Change `json:"overridden"`
	// Gains is how many users gain privilege (a role).
	Gains int `json:"gains"`
	// TeamGains is how many users join a team or become a team's admin.
	TeamGains int `json:"teamGains"`
	// Unknown are the claims proposed mappings read that some users'
	// ProxyUsers do not store (the mappings in force neither read nor keep
	// them): those users' outcome is known only at their next login.
	Unknown []UnknownClaim `json:"unknown"`
	// UnknownGains is how many users a rule reading a claim not stored for
	// them could give more than predicted (a higher role, or a team).
	UnknownGains int `json:"unknownGains"`
	// Held are the namespaces where the mass-change brake would hold the
	// change (ApplyBrake): it denies or demotes too many of their users.
	Held []HeldNamespace `json:"held"`

	usersIn map[string]int // users decided per namespace
}

// UnknownClaim is a claim proposed mappings read that is not stored for
// some users of a namespace.
type UnknownClaim struct {
	Namespace string `json:"namespace"`
	// Claim is the claim path, or "*" for expression rules (which may
	// read any claim).
	Claim string `json:"claim"`
	// Users is how many users of the namespace lack it.
	Users int `json:"users"`
	// CouldGain is how many of them a rule reading it could give more
	// than predicted.
	CouldGain int `json:"couldGain"`
	// Gainers are the first of those users (namespace/name), for the
	// reviewer to look at.
	Gainers []string `json:"gainers,omitempty"`
}

// maxGainersListed bounds UnknownClaim.Gainers.
const maxGainersListed = 10

// Escalates reports whether the change gives any user more: a role, a team
// or team admin, or possibly more at the next login (a rule reading a
// claim not stored for them). --fail-on escalation fails on it.
func (r Report) Escalates() bool { return r.Gains > 0 || r.TeamGains > 0 || r.UnknownGains > 0 }

// HeldNamespace is a namespace where the mass-change brake would hold the
// proposed change until an admin confirms it.
type HeldNamespace struct {
	Namespace string `json:"namespace"`
	// Lost is how many users would be denied or demoted, of Users.
	Lost      int `json:"lost"`
	Users     int `json:"users"`
	Threshold int `json:"threshold"`
}

// ApplyBrake fills Held: the namespaces where b would hold the change.
func (r *Report) ApplyBrake(b Brake) {
	r.Held = []HeldNamespace{}
	for ns, lost := range r.Losses() {
		if users := r.usersIn[ns]; b.Trips(lost, users) {
			r.Held = append(r.Held, HeldNamespace{Namespace: ns, Lost: lost, Users: users, Threshold: b.Threshold(users)})
		}
	}
	slices.SortFunc(r.Held, func(a, b HeldNamespace) int { return cmp.Compare(a.Namespace, b.Namespace) })
}

// Engines are the mappings per namespace (a namespace without one has no
// RoleMapping: its users are denied).
type Engines map[string]*rolemap.Engine

var empty = rolemap.NewEngine()

func (e Engines) of(namespace string) *rolemap.Engine {
	if eng := e[namespace]; eng != nil {
		return eng
	}
	return empty
}

// Diff decides every user under base and under proposed. Teams are
// predicted from the decision the controller makes (proxyuser.Decide with
// any roleOverride), through proxyuser.Teams, the controller's own
// function.
func Diff(users []rolesyncv1.ProxyUser, base, proposed Engines) Report {
	return DiffAt(users, base, proposed, proxyuser.DefaultGroupsClaim, time.Now())
}

// DiffAt is Diff with the groups claim of directory groups
// (--scim-groups-claim) and the time at which claims are aged
// (maxClaimAge).
func DiffAt(users []rolesyncv1.ProxyUser, base, proposed Engines, groupsClaim string, now time.Time) Report {
	r := Report{Users: len(users), Changes: []Change{}, Transitions: []Transition{}, Overridden: []Change{}, Held: []HeldNamespace{},
		Unknown: []UnknownClaim{}, usersIn: map[string]int{}}
	counts := map[[2]string]*Transition{}
	unknown := newUnknowns(base)
	for i := range users {
		pu := &users[i]
		r.usersIn[pu.Namespace]++
		in := proxyuser.UserInput(pu, nil, groupsClaim, now)
		c := Change{Namespace: pu.Namespace, Name: pu.Name, UserID: pu.Spec.UserID, Issuer: pu.Spec.Issuer}
		// What the controller grants: the decision with any override.
		in.Engine = base.of(pu.Namespace)
		actualOld := proxyuser.Decide(in)
		oldTeams := proxyuser.Teams(in, in.Stored, actualOld.Denied, nil)
		in.Engine = proposed.of(pu.Namespace)
		actualNew := proxyuser.Decide(in)
		newTeams := proxyuser.Teams(in, in.Stored, actualNew.Denied, nil)
		c.TeamsGained, c.TeamsLost = teamDiff(newTeams, oldTeams), teamDiff(oldTeams, newTeams)
		c.TeamGain = joinsOrRises(oldTeams, newTeams)
		c.Old, c.New = outcome(actualOld), outcome(actualNew)
		unknown.add(pu, in.Engine, c.New.rank())
		overridden := rolesyncv1.OverrideSet(in.Override)
		teamsMove := len(c.TeamsGained) > 0 || len(c.TeamsLost) > 0
		if overridden && !teamsMove {
			// The override decides the role either way: what the claims alone
			// would give, for the record.
			in.Override = nil
			in.Engine = base.of(pu.Namespace)
			c.Old = outcome(proxyuser.Decide(in))
			in.Engine = proposed.of(pu.Namespace)
			c.New = outcome(proxyuser.Decide(in))
			if c.Old.differs(c.New) {
				r.Overridden = append(r.Overridden, c)
			}
			continue
		}
		if !c.Old.differs(c.New) && !teamsMove {
			continue
		}
		c.Gain = c.New.rank() > c.Old.rank()
		if c.Gain {
			r.Gains++
		}
		if c.TeamGain {
			r.TeamGains++
		}
		r.Changes = append(r.Changes, c)
		if !c.Old.differs(c.New) {
			continue // teams only: no role transition
		}
		key := [2]string{c.Old.String(), c.New.String()}
		if counts[key] == nil {
			counts[key] = &Transition{From: key[0], To: key[1], Gain: c.Gain}
		}
		counts[key].Users++
	}
	r.Unknown, r.UnknownGains = unknown.report()
	slices.SortFunc(r.Changes, func(a, b Change) int {
		return cmp.Or(gainOrder(a)-gainOrder(b), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(r.Overridden, func(a, b Change) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, t := range counts {
		r.Transitions = append(r.Transitions, *t)
	}
	slices.SortFunc(r.Transitions, func(a, b Transition) int {
		ga, gb := 1, 1
		if a.Gain {
			ga = 0
		}
		if b.Gain {
			gb = 0
		}
		return cmp.Or(ga-gb, b.Users-a.Users, cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return r
}

// gainOrder: gains to proxy_admin, other role gains, team gains, the rest.
func gainOrder(c Change) int {
	switch {
	case c.Gain && c.New.Role == rolesyncv1.RoleProxyAdmin:
		return 0
	case c.Gain:
		return 1
	case c.TeamGain:
		return 2
	}
	return 3
}

// teamDiff lists the memberships ("team (role)") of a that b lacks.
func teamDiff(a, b []rolesyncv1.TeamMembership) []string {
	var out []string
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y rolesyncv1.TeamMembership) bool { return y.Team == x.Team && y.Role == x.Role }) {
			out = append(out, x.Team+" ("+string(x.Role)+")")
		}
	}
	return out
}

// joinsOrRises reports whether after holds a team before lacks, or admin of
// a team before held as a member.
func joinsOrRises(before, after []rolesyncv1.TeamMembership) bool {
	for _, a := range after {
		i := slices.IndexFunc(before, func(b rolesyncv1.TeamMembership) bool { return b.Team == a.Team })
		if i < 0 || a.Role.Rank() > before[i].Role.Rank() {
			return true
		}
	}
	return false
}

func outcome(d proxyuser.Decision) Outcome {
	o := Outcome{Role: d.Role, Denied: d.Denied, Reason: d.Reason, rule: -1}
	if d.Source != nil && !d.Denied {
		o.Source = d.Source.Description
		if d.Source.Type == rolesyncv1.SourceOverride {
			o.Source = "roleOverride"
		}
		o.mapping = d.Source.RoleMapping
		if d.Source.Rule != nil {
			o.rule = *d.Source.Rule
		}
	}
	return o
}

// differs: another role, allowed <-> denied (or another denial reason), or
// another mapping or rule deciding.
func (o Outcome) differs(n Outcome) bool {
	return o.Role != n.Role || o.Denied != n.Denied || o.Reason != n.Reason || o.mapping != n.mapping || o.rule != n.rule
}

// Summary is one line: how many users change and gain.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d of %d users change (%d gain privilege", len(r.Changes), r.Users, r.Gains)
	if r.TeamGains > 0 {
		s += fmt.Sprintf(", %d gain teams", r.TeamGains)
	}
	s += ")"
	unknown := 0
	for _, u := range r.Unknown {
		unknown = max(unknown, u.Users)
	}
	if unknown > 0 {
		s += fmt.Sprintf("; outcome unknown at next login for %d or more users (%d could gain)", unknown, r.UnknownGains)
	}
	return s
}
