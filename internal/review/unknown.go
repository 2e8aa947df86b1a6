package review

import (
	"cmp"
	"slices"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// unknowns finds, per namespace and claim, the users whose ProxyUser does
// not store a claim a proposed mapping reads. A ProxyUser stores what the
// mappings in force read or keep (proxyuser.StoredPaths): a claim among
// those that a user lacks is one the user's login did not carry (known);
// any other claim a user lacks may simply not have been stored (unknown).
type unknowns struct {
	base    Engines
	known   map[string]knownPaths // by namespace
	claims  map[[2]string]*UnknownClaim
	gainers map[string]bool // namespace/name of users who could gain
}

type knownPaths struct {
	all   bool
	paths map[string]bool
}

func newUnknowns(base Engines) *unknowns {
	return &unknowns{base: base, known: map[string]knownPaths{}, claims: map[[2]string]*UnknownClaim{}, gainers: map[string]bool{}}
}

func (u *unknowns) knownIn(namespace string) knownPaths {
	k, ok := u.known[namespace]
	if !ok {
		paths, all := proxyuser.StoredPaths(u.base.of(namespace), nil)
		k = knownPaths{all: all, paths: map[string]bool{}}
		for _, p := range paths {
			k.paths[p.String()] = true
		}
		u.known[namespace] = k
	}
	return k
}

// add records the claims proposed reads that pu does not store, and
// whether a rule reading one could give pu more than newRank (its
// predicted role's rank) or a team.
func (u *unknowns) add(pu *rolesyncv1.ProxyUser, proposed *rolemap.Engine, newRank int) {
	known := u.knownIn(pu.Namespace)
	if known.all {
		return // every claim of every login is stored
	}
	stored := proxyuser.StoredClaims(pu)
	seen := map[string]bool{}
	for _, m := range proposed.Mappings() {
		if m.Namespace != pu.Namespace || (m.Issuer != "" && m.Issuer != pu.Spec.Issuer) {
			continue
		}
		for path, g := range m.Grants() {
			if seen[path] || known.paths[path] || (path != rolemap.AnyClaim && has(stored, path)) {
				continue
			}
			seen[path] = true
			key := [2]string{pu.Namespace, path}
			uc := u.claims[key]
			if uc == nil {
				uc = &UnknownClaim{Namespace: pu.Namespace, Claim: path}
				u.claims[key] = uc
			}
			uc.Users++
			if g.Role.Rank() > newRank || g.Teams {
				uc.CouldGain++
				name := pu.Namespace + "/" + pu.Name
				u.gainers[name] = true
				if len(uc.Gainers) < maxGainersListed {
					uc.Gainers = append(uc.Gainers, name)
				}
			}
		}
	}
}

func has(claims map[string]any, path string) bool {
	p, err := claimpath.Parse(path)
	if err != nil {
		return false
	}
	_, ok := p.Lookup(claims)
	return ok
}

// report returns the unknown claims (most users first) and how many
// distinct users could gain.
func (u *unknowns) report() ([]UnknownClaim, int) {
	out := make([]UnknownClaim, 0, len(u.claims))
	for _, uc := range u.claims {
		out = append(out, *uc)
	}
	slices.SortFunc(out, func(a, b UnknownClaim) int {
		return cmp.Or(b.CouldGain-a.CouldGain, b.Users-a.Users, cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Claim, b.Claim))
	})
	return out, len(u.gainers)
}
