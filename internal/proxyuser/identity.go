package proxyuser

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// Finalizer holds a ProxyUser until its deletionPolicy has been applied to
// the proxy database.
const Finalizer = "rolesync.dev/proxy-user"

// Field managers of the two writers of a ProxyUser: the login server writes
// spec (claims, login time); the controller writes status.
const (
	LoginFieldManager = "rolesync-login"
)

// Cache field indexes on ProxyUsers (registered by controllers.SetupIndexes).
//
// UserIDIndex, EmailIndex, DirectoryUserNameIndex and DirectoryExternalIDIndex
// are the identity indexes: cluster-wide only (one index entry per user
// instead of controller-runtime's two, a namespaced and a cluster-wide key),
// and they store a bucket of each value, not the value (IdentityBuckets says
// why). Read them with IdentityMatches, ByIndex or OwnerOf, never with a
// plain client.MatchingFields list.
const (
	// SourceMappingIndex indexes ProxyUsers by the RoleMapping that decides
	// their role (status.source.roleMapping).
	SourceMappingIndex = "rolesync.dev/source-mapping"
	// UserIDIndex indexes ProxyUsers by spec.userID across namespaces: one
	// userID is one LiteLLM row, whatever the namespace or issuer.
	UserIDIndex = "rolesync.dev/user-id"
	// EmailIndex indexes ProxyUsers by spec.email, ASCII-lower-cased
	// (emailaddr.Fold): a directory user and a login find the person's one
	// ProxyUser by it.
	EmailIndex = "rolesync.dev/email"
	// DirectoryUserNameIndex indexes directory users by their SCIM
	// userName, ASCII-lower-cased (SCIM userName is case-insensitive).
	DirectoryUserNameIndex = "rolesync.dev/directory-username"
	// DirectoryExternalIDIndex indexes directory users by SCIM externalId.
	DirectoryExternalIDIndex = "rolesync.dev/directory-externalid"
	// DirectoryGroupIndex indexes directory users by the ids of their
	// directory groups: a group's members.
	DirectoryGroupIndex = "rolesync.dev/directory-group"
	// DirectoryGroupNameIndex indexes DirectoryGroups by displayName,
	// ASCII-lower-cased.
	DirectoryGroupNameIndex = "rolesync.dev/directory-group-name"
)

// SCIMFieldManager is the field manager of the SCIM service provider's
// writes (spec.directory, and spec.email of directory users).
const SCIMFieldManager = "rolesync-scim"

// IdentityKey identifies the person behind a login: issuer and userID.
func IdentityKey(issuer, userID string) string { return issuer + "\x00" + userID }

// Name derives the name of a new ProxyUser from its issuer and userID: a
// readable prefix of the userID (lower case, other characters replaced by
// '-') and a hash of both, so the same person always gets the same name and
// different people never collide. The result is a valid DNS-1123 subdomain
// of at most 63 characters.
func Name(issuer, userID string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + userID))
	hash := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:13])
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(userID) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	prefix := strings.Trim(b.String(), "-")
	if prefix == "" {
		return "user-" + hash
	}
	return prefix + "-" + hash
}

// OwnerOf returns the ProxyUser of namespace that owns an identity (issuer
// and userID): the oldest with it, whatever its name, or nil. It reads
// through the UserIDIndex and returns a copy.
func OwnerOf(ctx context.Context, reader client.Reader, namespace, issuer, userID string) (*rolesyncv1.ProxyUser, error) {
	users, err := IdentityMatches(ctx, reader, UserIDIndex, userID)
	if err != nil {
		return nil, fmt.Errorf("list proxy users of one identity in %s: %w", namespace, err)
	}
	var owner *rolesyncv1.ProxyUser
	for _, pu := range users {
		if pu.Namespace != namespace || pu.Spec.Issuer != issuer {
			continue
		}
		if owner == nil || pu.CreatedBefore(owner) {
			owner = pu
		}
	}
	if owner == nil {
		return nil, nil
	}
	return owner.DeepCopy(), nil
}

// ByIndex lists the ProxyUsers of namespace ("": every namespace) that
// hold value in the identity index named index (deep copies: the caller
// may change them).
func ByIndex(ctx context.Context, reader client.Reader, namespace, index, value string) ([]rolesyncv1.ProxyUser, error) {
	users, err := IdentityMatches(ctx, reader, index, value)
	if err != nil {
		return nil, err
	}
	var out []rolesyncv1.ProxyUser
	for _, pu := range users {
		if namespace == "" || pu.Namespace == namespace {
			out = append(out, *pu.DeepCopy())
		}
	}
	return out, nil
}

// MappingsLoaded reports whether registry has seen every RoleMapping of the
// namespace (as reader lists them) at its current generation, and none that
// is gone. Until it has, a decision could deny users whose mapping is about
// to load: the controller waits, the login server answers 503.
func MappingsLoaded(ctx context.Context, reader client.Reader, registry *rolemap.Registry, namespace string) (bool, error) {
	var list rolesyncv1.RoleMappingList
	if err := reader.List(ctx, &list, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("list role mappings of %s: %w", namespace, err)
	}
	live := 0
	for i := range list.Items {
		rm := &list.Items[i]
		if !rm.DeletionTimestamp.IsZero() {
			continue
		}
		live++
		if g, ok := registry.Observed(namespace, rm.Name); !ok || g != rm.Generation {
			return false, nil
		}
	}
	return registry.ObservedCount(namespace) == live, nil
}

// StoredPaths are the claim paths a login stores on a ProxyUser of the
// namespace whose mappings engine holds: those the mappings read, those
// they keep (spec.keepClaims), and extra (--login-keep-claims). all is
// true when a mapping has expression rules, which may read any claim: then
// every claim is stored.
func StoredPaths(engine *rolemap.Engine, extra []claimpath.Path) (paths []claimpath.Path, all bool) {
	paths = append(paths, extra...)
	for _, m := range engine.Mappings() {
		if m.HasExpressions() {
			return nil, true
		}
		for _, list := range [][]string{m.ClaimPaths(), m.KeptPaths()} {
			for _, p := range list {
				if cp, err := claimpath.Parse(p); err == nil {
					paths = append(paths, cp)
				}
			}
		}
	}
	return paths, false
}

// ReduceClaims keeps only the claims at paths (a path that goes through a
// list index keeps the whole list), so a ProxyUser stores what its mappings
// read and nothing else.
func ReduceClaims(claims map[string]any, paths []claimpath.Path) map[string]any {
	out := map[string]any{}
	for _, p := range paths {
		segs := p.Segments()
		src, dst := claims, out
		for i, s := range segs {
			if s.IsIndex {
				break // the list was copied whole at the previous key
			}
			v, ok := src[s.Key]
			if !ok {
				break
			}
			next, isMap := v.(map[string]any)
			last := i == len(segs)-1 || segs[i+1].IsIndex
			if last || !isMap {
				if last {
					dst[s.Key] = v
				}
				break
			}
			d, ok := dst[s.Key].(map[string]any)
			if !ok {
				d = map[string]any{}
				dst[s.Key] = d
			}
			src, dst = next, d
		}
	}
	return out
}
