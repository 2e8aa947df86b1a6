package cachetrim

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"
	"weak"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// table shares equal values among cached objects: the first object with a
// value keeps its own, later ones point at it. An entry holds its value
// weakly and goes when no object holds the value any more, so the table
// never keeps a replaced or deleted user's values alive.
type table[T any] struct {
	mu sync.Mutex
	m  map[string]weak.Pointer[T]
}

func newTable[T any]() *table[T] { return &table[T]{m: map[string]weak.Pointer[T]{}} }

// share returns the value held under key, or makes v that value.
func (t *table[T]) share(key string, v *T) *T {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.m[key].Value(); p != nil {
		return p
	}
	t.m[key] = weak.Make(v)
	runtime.AddCleanup(v, t.forget, key)
	return v
}

// forget drops key once its value is gone (a newer value under the same
// key stays).
func (t *table[T]) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[key].Value() == nil {
		delete(t.m, key)
	}
}

func (t *table[T]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

var (
	conditionSets = newTable[metav1.Condition]()
	sources       = newTable[rolesyncv1.RoleSource]()
)

// Claim sets are not shared: a login stores the whole list a mapping
// reads (every group of the user), so few users hold equal ones, and an
// entry of a value nobody else holds costs ~150 bytes (key, weak pointer,
// cleanup) for nothing. Sources and condition lists repeat by the
// thousand.

// sharedConditions returns conds, or an equal slice another cached user
// holds. Users who went through the same steps in the same second hold
// equal conditions (their transition times have a second's resolution):
// after a mass move, thousands do. The slice's capacity is its length, so
// an append (on a deep copy, as every writer makes) never writes into the
// shared array.
func sharedConditions(conds []metav1.Condition) []metav1.Condition {
	if len(conds) == 0 {
		return conds
	}
	var k strings.Builder
	for i := range conds {
		c := &conds[i]
		writeKey(&k, c.Type, string(c.Status), c.Reason, c.Message, strconv.FormatInt(c.ObservedGeneration, 10),
			strconv.FormatInt(c.LastTransitionTime.UnixNano(), 10), c.LastTransitionTime.Location().String())
	}
	own := conds[:len(conds):len(conds)]
	first := conditionSets.share(k.String(), &own[0])
	return unsafe.Slice(first, len(conds))
}

// sharedSource returns src, or an equal source another cached user holds
// (every user a rule grants holds the same one).
func sharedSource(src *rolesyncv1.RoleSource) *rolesyncv1.RoleSource {
	if src == nil {
		return nil
	}
	rule := "-"
	if src.Rule != nil {
		rule = strconv.Itoa(int(*src.Rule))
	}
	var k strings.Builder
	writeKey(&k, string(src.Type), src.RoleMapping, rule, src.Claim, src.Value, src.Description, strconv.FormatBool(src.FromDirectory))
	return sources.share(k.String(), src)
}

// writeKey appends parts to a table key, each prefixed by its length so
// that no two different lists of parts make one key.
func writeKey(k *strings.Builder, parts ...string) {
	for _, v := range parts {
		k.WriteString(strconv.Itoa(len(v)))
		k.WriteByte(':')
		k.WriteString(v)
	}
}
