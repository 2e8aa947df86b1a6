package proxyuser

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// collidingUserIDs returns two userIDs that land in one bucket.
func collidingUserIDs(t *testing.T) (string, string) {
	t.Helper()
	seen := map[string]string{}
	for i := 0; ; i++ {
		id := fmt.Sprintf("user-%d", i)
		b := IdentityBucket(id)
		if other, ok := seen[b]; ok {
			return other, id
		}
		seen[b] = id
	}
}

func identityClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := rolesyncv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...)
	for _, name := range IdentityIndexes() {
		b = b.WithIndex(&rolesyncv1.ProxyUser{}, name, func(o client.Object) []string {
			return IdentityIndexValues(name, o.(*rolesyncv1.ProxyUser))
		})
	}
	return b.Build()
}

func identityUser(ns, name, userID, email string) *rolesyncv1.ProxyUser {
	pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	pu.Spec.UserID, pu.Spec.Email = userID, email
	return pu
}

// Two users whose userIDs share a bucket: a lookup of one finds that one
// only, in every namespace; OwnerOf and ByIndex filter the same way.
func TestIdentityLookupsKeepOnlyExactMatches(t *testing.T) {
	a, b := collidingUserIDs(t)
	c := identityClient(t,
		identityUser("one", "a", a, "A@Example.com"),
		identityUser("two", "a-again", a, ""),
		identityUser("one", "b", b, "b@example.com"))
	ctx := context.Background()

	var bucket rolesyncv1.ProxyUserList
	if err := c.List(ctx, &bucket, client.MatchingFields{UserIDIndex: IdentityBucket(a)}); err != nil {
		t.Fatal(err)
	}
	if len(bucket.Items) != 3 {
		t.Fatalf("the bucket of %q holds %d users, want all 3 (the test needs a collision)", a, len(bucket.Items))
	}

	got, err := IdentityMatches(ctx, c, UserIDIndex, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Spec.UserID != a || got[1].Spec.UserID != a {
		t.Fatalf("IdentityMatches(%q) = %d users, want the 2 holding it", a, len(got))
	}
	owner, err := OwnerOf(ctx, c, "one", "", b)
	if err != nil || owner == nil || owner.Name != "b" {
		t.Fatalf("OwnerOf(one, %q) = %v, %v; want b", b, owner, err)
	}
	inOne, err := ByIndex(ctx, c, "two", UserIDIndex, a)
	if err != nil || len(inOne) != 1 || inOne[0].Name != "a-again" {
		t.Fatalf("ByIndex(two, %q) = %v, %v; want a-again", a, inOne, err)
	}
	// Emails are folded on both sides.
	byEmail, err := ByIndex(ctx, c, "", EmailIndex, "a@example.com")
	if err != nil || len(byEmail) != 1 || byEmail[0].Name != "a" {
		t.Fatalf("ByIndex(email) = %v, %v; want a", byEmail, err)
	}
	if _, err := IdentityMatches(ctx, c, SourceMappingIndex, "x"); err == nil {
		t.Error("IdentityMatches accepted an index that is not an identity index")
	}
}

// The point of the buckets: 100,000 distinct values share at most
// IdentityBuckets index entries, spread evenly enough that a lookup reads
// a few dozen users, not thousands.
func TestIdentityBucketsAreBoundedAndEven(t *testing.T) {
	const n = 100000
	counts := map[string]int{}
	for i := range n {
		counts[IdentityBucket(fmt.Sprintf("ns-%d-u%06d", i%4, i))]++
	}
	if len(counts) > IdentityBuckets {
		t.Fatalf("%d buckets, at most %d allowed", len(counts), IdentityBuckets)
	}
	largest := 0
	for _, c := range counts {
		largest = max(largest, c)
	}
	if mean := n / IdentityBuckets; largest > 3*mean {
		t.Errorf("largest bucket holds %d users, mean %d: the hash does not spread", largest, mean)
	}
}
