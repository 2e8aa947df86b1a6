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
	// Gains is how many users gain privilege.
	Gains int `json:"gains"`
	// Held are the namespaces where the mass-change brake would hold the
	// change (ApplyBrake): it denies or demotes too many of their users.
	Held []HeldNamespace `json:"held"`

	usersIn map[string]int // users decided per namespace
}

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

// Diff decides every user under base and under proposed.
func Diff(users []rolesyncv1.ProxyUser, base, proposed Engines) Report {
	r := Report{Users: len(users), Changes: []Change{}, Transitions: []Transition{}, Overridden: []Change{}, Held: []HeldNamespace{}, usersIn: map[string]int{}}
	counts := map[[2]string]*Transition{}
	for i := range users {
		pu := &users[i]
		r.usersIn[pu.Namespace]++
		in := proxyuser.Input{Namespace: pu.Namespace, Issuer: pu.Spec.Issuer, Override: pu.Spec.RoleOverride, Stored: proxyuser.StoredClaims(pu)}
		c := Change{Namespace: pu.Namespace, Name: pu.Name, UserID: pu.Spec.UserID, Issuer: pu.Spec.Issuer}
		overridden := rolesyncv1.OverrideSet(in.Override)
		if overridden { // what the claims alone would give, for the record
			in.Override = nil
		}
		in.Engine = base.of(pu.Namespace)
		c.Old = outcome(proxyuser.Decide(in))
		oldTeams := teams(in, c.Old.Denied)
		in.Engine = proposed.of(pu.Namespace)
		c.New = outcome(proxyuser.Decide(in))
		newTeams := teams(in, c.New.Denied)
		c.TeamsGained, c.TeamsLost = minus(newTeams, oldTeams), minus(oldTeams, newTeams)
		if !c.Old.differs(c.New) && len(c.TeamsGained) == 0 && len(c.TeamsLost) == 0 {
			continue
		}
		if overridden {
			r.Overridden = append(r.Overridden, c)
			continue
		}
		c.Gain = c.New.rank() > c.Old.rank()
		if c.Gain {
			r.Gains++
		}
		r.Changes = append(r.Changes, c)
		key := [2]string{c.Old.String(), c.New.String()}
		if counts[key] == nil {
			counts[key] = &Transition{From: key[0], To: key[1], Gain: c.Gain}
		}
		counts[key].Users++
	}
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

// gainOrder: gains to proxy_admin, other gains, the rest.
func gainOrder(c Change) int {
	switch {
	case c.Gain && c.New.Role == rolesyncv1.RoleProxyAdmin:
		return 0
	case c.Gain:
		return 1
	}
	return 2
}

// teams are the memberships ("team (role)") the engine of in grants.
func teams(in proxyuser.Input, denied bool) []string {
	td := in.Engine.EvaluateTeams(in.Stored, in.Issuer)
	var out []string
	for _, g := range proxyuser.TeamGrants(in.Namespace, &td, denied) {
		out = append(out, g.Team+" ("+string(g.Role)+")")
	}
	return out
}

// minus is a without b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
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
	return fmt.Sprintf("%d of %d users change (%d gain privilege)", len(r.Changes), r.Users, r.Gains)
}
