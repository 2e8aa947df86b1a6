package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// CreateMapping creates the RoleMapping of the YAML doc in ns and waits
// until registry has loaded its generation (what the login server, the
// SCIM provider and the controller decide with).
func CreateMapping(tb testing.TB, c client.Client, registry *rolemap.Registry, ns, doc string) *rolesyncv1.RoleMapping {
	tb.Helper()
	rm := &rolesyncv1.RoleMapping{}
	if err := yaml.UnmarshalStrict([]byte(doc), rm); err != nil {
		tb.Fatal(err)
	}
	rm.Namespace = ns
	if err := c.Create(context.Background(), rm); err != nil {
		tb.Fatal(err)
	}
	Eventually(tb, 30*time.Second, 20*time.Millisecond, func() error {
		if g, ok := registry.Observed(ns, rm.Name); !ok || g != rm.Generation {
			return fmt.Errorf("mapping %s/%s not loaded", ns, rm.Name)
		}
		return nil
	}, nil)
	return rm
}
