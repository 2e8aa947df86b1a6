package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// explainUserJSON is explain --user -o json; its keys are a stable interface.
type explainUserJSON struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	UserID    string           `json:"userID"`
	Issuer    string           `json:"issuer,omitempty"`
	Override  *rolesyncv1.Role `json:"roleOverride,omitempty"`
	Role      rolesyncv1.Role  `json:"role"`
	Denied    bool             `json:"denied"`
	Reason    string           `json:"reason"`
	Message   string           `json:"message"`
	// Claims is what the stored claims alone decide (the whole decision
	// unless roleOverride is set).
	Claims explainJSON `json:"claims"`
	// Teams are the LiteLLM team memberships the mappings grant.
	Teams []rolesyncv1.TeamMembership `json:"teams"`
}

// explainUser explains a ProxyUser's role from the claims it stores, with
// the cluster's mappings in force (or -f files), as the controller decides.
func explainUser(name string, files []string, usersFile string, kube *kubeFlags, output string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "rolesync explain: "+format+"\n", a...)
		return code
	}
	if kube.allNamespaces {
		return fail(exitInvalid, "--user takes one namespace (-n), not -A")
	}
	ctx := context.Background()
	ns, err := kube.resolvedNamespace()
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	var c *cluster
	if usersFile == "" || len(files) == 0 {
		if c, err = kube.connect(); err != nil {
			return fail(exitFailure, "%v", err)
		}
	}
	var pu *rolesyncv1.ProxyUser
	if usersFile != "" {
		users, err := loadUsers(usersFile)
		if err != nil {
			return fail(exitInvalid, "%v", err)
		}
		for i := range users {
			if users[i].Namespace == ns && users[i].Name == name {
				pu = &users[i]
			}
		}
		if pu == nil {
			return fail(exitInvalid, "%s: no ProxyUser %s/%s", usersFile, ns, name)
		}
	} else {
		pu = &rolesyncv1.ProxyUser{}
		if err := c.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, pu); err != nil {
			if apierrors.IsNotFound(err) {
				return fail(exitInvalid, "no ProxyUser %s/%s", ns, name)
			}
			return fail(exitFailure, "get ProxyUser %s/%s: %v", ns, name, err)
		}
	}
	var mappings []*rolemap.Mapping
	if len(files) > 0 {
		all, err := loadMappingsIn(files, ns)
		if err != nil {
			return fail(exitInvalid, "%v", err)
		}
		mappings = inNamespace(all, ns)
	} else if mappings, err = c.mappings(ctx, ns, func(w string) { fmt.Fprintln(stderr, "rolesync explain: warning:", w) }); err != nil {
		return fail(exitFailure, "%v", err)
	}
	engine := rolemap.NewEngine(mappings...)
	in := proxyuser.UserInput(pu, engine, proxyuser.DefaultGroupsClaim, time.Now())
	final := proxyuser.Decide(in)
	in.Override = nil
	claims := proxyuser.Decide(in).Engine
	overridden := rolesyncv1.OverrideSet(pu.Spec.RoleOverride)
	var td rolemap.TeamDecision
	teams := proxyuser.Teams(in, in.Stored, final.Denied, &td)

	if output == "json" {
		doc := explainUserJSON{Namespace: ns, Name: pu.Name, UserID: pu.Spec.UserID, Issuer: pu.Spec.Issuer,
			Role: final.Role, Denied: final.Denied, Reason: final.Reason, Message: final.Message, Claims: toJSON(claims),
			Teams: append([]rolesyncv1.TeamMembership{}, teams...)}
		doc.Claims.Teams = doc.Teams
		if overridden {
			doc.Override = pu.Spec.RoleOverride
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			return fail(exitFailure, "%v", err)
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "User:     %s/%s (userID %s, issuer %s)\n", ns, pu.Name, pu.Spec.UserID, orNone(pu.Spec.Issuer))
	if pu.Spec.Claims == nil {
		fmt.Fprintln(stdout, "Claims:   none stored (no login yet)")
	}
	if overridden {
		fmt.Fprintf(stdout, "Override: spec.roleOverride decides: %s, whatever the claims; what they alone would decide follows\n", *pu.Spec.RoleOverride)
	}
	printText(stdout, claims, len(mappings))
	printTeams(stdout, teams, &td)
	return exitOK
}
