package proxyuser

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/emailaddr"
)

// IdentityBuckets is how many buckets the identity indexes (UserIDIndex,
// EmailIndex, DirectoryUserNameIndex, DirectoryExternalIDIndex) spread
// their values over.
//
// client-go's indexer keeps a set of object keys per index value: an index
// of a value only one user holds costs one map per user (about 300 bytes,
// more than a cached ProxyUser's spec), 30 MB per index at 100,000 users.
// The identity indexes therefore store the bucket of a value (a hash), and
// a lookup lists the bucket and keeps the users that hold the value itself
// (IdentityMatches): at 100,000 users a bucket holds ~25 users, a few
// dozen bytes each, and a lookup compares ~25 strings. Buckets are updated
// with the informer's store, under its lock, as any field index is.
const IdentityBuckets = 4096

// identityValues are the exact values each identity index holds for a user.
var identityValues = map[string]func(*rolesyncv1.ProxyUser) []string{
	UserIDIndex: func(pu *rolesyncv1.ProxyUser) []string { return []string{pu.Spec.UserID} },
	EmailIndex: func(pu *rolesyncv1.ProxyUser) []string {
		if e := pu.Spec.Email; e != "" {
			return []string{emailaddr.Fold(e)}
		}
		return nil
	},
	DirectoryUserNameIndex: func(pu *rolesyncv1.ProxyUser) []string {
		if d := pu.Spec.Directory; d != nil && !d.Deleted {
			return []string{emailaddr.Fold(d.UserName)}
		}
		return nil
	},
	DirectoryExternalIDIndex: func(pu *rolesyncv1.ProxyUser) []string {
		if d := pu.Spec.Directory; d != nil && !d.Deleted && d.ExternalID != "" {
			return []string{d.ExternalID}
		}
		return nil
	},
}

// IdentityIndexes names the identity indexes.
func IdentityIndexes() []string {
	names := make([]string, 0, len(identityValues))
	for name := range identityValues {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// IdentityBucket is the bucket an identity index stores for value.
func IdentityBucket(value string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(value))
	return strconv.FormatUint(uint64(h.Sum32()%IdentityBuckets), 16)
}

// IdentityIndexValues are the buckets the identity index named index
// stores for pu (what the cache's index function returns).
func IdentityIndexValues(index string, pu *rolesyncv1.ProxyUser) []string {
	values := identityValues[index](pu)
	for i, v := range values {
		values[i] = IdentityBucket(v)
	}
	return values
}

// holds reports whether pu holds value in the identity index named index.
func holds(index string, pu *rolesyncv1.ProxyUser, value string) bool {
	return slices.Contains(identityValues[index](pu), value)
}

// IdentityMatches lists the cached ProxyUsers of every namespace that hold
// value in the identity index named index. They are the cache's own
// objects, shared and read-only: copy one before changing it.
func IdentityMatches(ctx context.Context, reader client.Reader, index, value string) ([]*rolesyncv1.ProxyUser, error) {
	if _, ok := identityValues[index]; !ok {
		return nil, fmt.Errorf("%s is not an identity index", index)
	}
	var list rolesyncv1.ProxyUserList
	if err := reader.List(ctx, &list, client.MatchingFields{index: IdentityBucket(value)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list proxy users by %s: %w", index, err)
	}
	var out []*rolesyncv1.ProxyUser
	for i := range list.Items {
		if pu := &list.Items[i]; holds(index, pu, value) {
			out = append(out, pu)
		}
	}
	return out, nil
}
