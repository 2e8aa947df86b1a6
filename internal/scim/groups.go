package scim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/scim2/filter-parser/v2"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/emailaddr"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

// groupHandler serves /Groups: a DirectoryGroup, whose members are the
// ProxyUsers that list it (spec.directory.groups).
type groupHandler struct{ s *Server }

// memberIDs reads a members value: a list of {"value": id}.
func memberIDs(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		if m, isMap := v.(map[string]any); isMap { // one member sent as an object
			list = []any{m}
		} else if v != nil {
			return nil, badValue("members must be a list of {\"value\": id}")
		}
	}
	var ids []string
	for _, e := range list {
		m, _ := e.(map[string]any)
		id := str(m, "value")
		if id == "" {
			return nil, badValue("every member needs a value (the user's id)")
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Create stores a group and adds its members.
func (h *groupHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	ns := namespaceOf(r)
	name, ext := str(attrs, "displayName"), str(attrs, "externalId")
	if err := checkGroup(name, ext); err != nil {
		return elimity.Resource{}, err
	}
	members, err := memberIDs(valueOf(attrs, "members"))
	if err != nil {
		return elimity.Resource{}, err
	}
	if taken, err := h.byName(r.Context(), ns, name); err != nil {
		return elimity.Resource{}, unavailable(err)
	} else if taken != nil {
		return elimity.Resource{}, uniqueness("displayName " + name + " is taken by group " + taken.Name)
	}
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return elimity.Resource{}, err
	}
	g := &rolesyncv1.DirectoryGroup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dg-" + hex.EncodeToString(suffix[:])},
		Spec: rolesyncv1.DirectoryGroupSpec{DisplayName: name, ExternalID: ext}}
	if err := h.s.client.Create(r.Context(), g, fieldManager); err != nil {
		return elimity.Resource{}, asSCIM(err)
	}
	if err := h.s.changeMembers(r.Context(), g, members, nil); err != nil {
		return elimity.Resource{}, err
	}
	return h.resource(r, g)
}

func checkGroup(name, ext string) error {
	switch {
	case name == "" || len(name) > 256 || !rolesyncv1.Printable(name):
		return badValue("displayName: required, 1 to 256 printable characters")
	case len(ext) > 256:
		return badValue("externalId: at most 256 characters")
	}
	return nil
}

func valueOf(attrs map[string]any, name string) any { v, _ := attr(attrs, name); return v }

// Get returns a group with its members (unless excludedAttributes=members).
func (h *groupHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	g, err := h.get(r.Context(), namespaceOf(r), id)
	if err != nil {
		return elimity.Resource{}, err
	}
	return h.resource(r, g)
}

// GetAll lists groups; displayName eq reads an index.
func (h *groupHandler) GetAll(r *http.Request, params elimity.ListRequestParams) (elimity.Page, error) {
	ns := namespaceOf(r)
	var groups []rolesyncv1.DirectoryGroup
	if name, value, ok := equality(params); ok && strings.EqualFold(name, "displayName") {
		g, err := h.byName(r.Context(), ns, value)
		if err != nil {
			return elimity.Page{}, unavailable(err)
		}
		if g != nil {
			groups = append(groups, *g)
		}
	} else {
		var list rolesyncv1.DirectoryGroupList
		if err := h.s.client.List(r.Context(), &list, client.InNamespace(ns)); err != nil {
			return elimity.Page{}, unavailable(err)
		}
		groups = list.Items
	}
	slices.SortFunc(groups, func(a, b rolesyncv1.DirectoryGroup) int { return strings.Compare(a.Name, b.Name) })
	var resources []elimity.Resource
	for i := range groups {
		res, err := h.resource(r, &groups[i])
		if err != nil {
			return elimity.Page{}, err
		}
		if params.FilterValidator != nil && params.FilterValidator.PassesFilter(withID(res)) != nil {
			continue
		}
		resources = append(resources, res)
	}
	return page(resources, params), nil
}

// Replace sets a group's name and its members exactly.
func (h *groupHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	name, ext := str(attrs, "displayName"), str(attrs, "externalId")
	if err := checkGroup(name, ext); err != nil {
		return elimity.Resource{}, err
	}
	members, err := memberIDs(valueOf(attrs, "members"))
	if err != nil {
		return elimity.Resource{}, err
	}
	g, err := h.update(r.Context(), namespaceOf(r), id, name, ext, true, members, nil, nil)
	if err != nil {
		return elimity.Resource{}, err
	}
	return h.resource(r, g)
}

// Patch applies member additions and removals (by value list, as Entra ID
// sends them, or members[value eq "…"] paths, as Okta does), replaces,
// and renames.
func (h *groupHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	ns := namespaceOf(r)
	g, err := h.get(r.Context(), ns, id)
	if err != nil {
		return elimity.Resource{}, err
	}
	name, ext := g.Spec.DisplayName, g.Spec.ExternalID
	var set []string // members replaced: the exact list (nil: not replaced)
	replaced := false
	var add, remove []string
	for _, op := range ops {
		kind := strings.ToLower(op.Op)
		var p filter.Path
		if op.Path != nil {
			p = *op.Path
		}
		target := strings.ToLower(p.AttributePath.AttributeName)
		switch {
		case op.Path == nil && kind != elimity.PatchOperationRemove:
			values, ok := op.Value.(map[string]any)
			if !ok {
				return elimity.Resource{}, badValue("a PATCH without path needs an object value")
			}
			if v, ok := attr(values, "displayName"); ok {
				name, _ = v.(string)
			}
			if v, ok := attr(values, "externalId"); ok {
				ext, _ = v.(string)
			}
			if v, ok := attr(values, "members"); ok {
				ids, err := memberIDs(v)
				if err != nil {
					return elimity.Resource{}, err
				}
				if kind == elimity.PatchOperationAdd {
					add = append(add, ids...)
				} else {
					set, replaced, add, remove = ids, true, nil, nil
				}
			}
		case target == "displayname" && kind != elimity.PatchOperationRemove:
			s, ok := op.Value.(string)
			if !ok {
				return elimity.Resource{}, badValue("displayName must be a string")
			}
			name = s
		case target == "externalid":
			ext, _ = op.Value.(string)
		case target == "members" && p.ValueExpression != nil:
			// members[value eq "id"]: only removal makes sense.
			if kind != elimity.PatchOperationRemove {
				return elimity.Resource{}, scimerrors.ScimErrorInvalidPath
			}
			e, ok := p.ValueExpression.(*filter.AttributeExpression)
			id, isString := "", false
			if ok {
				id, isString = e.CompareValue.(string)
			}
			if !ok || !strings.EqualFold(e.AttributePath.AttributeName, "value") || e.Operator != filter.EQ || !isString {
				return elimity.Resource{}, badValue("only members[value eq \"<id>\"] selects members")
			}
			remove = append(remove, id)
		case target == "members":
			ids, err := memberIDs(op.Value)
			if err != nil {
				return elimity.Resource{}, err
			}
			switch kind {
			case elimity.PatchOperationAdd:
				add = append(add, ids...)
			case elimity.PatchOperationReplace:
				set, replaced, add, remove = ids, true, nil, nil
			case elimity.PatchOperationRemove:
				if op.Value == nil { // remove every member
					set, replaced, add, remove = nil, true, nil, nil
				} else {
					remove = append(remove, ids...)
				}
			}
		default:
			return elimity.Resource{}, scimerrors.ScimErrorInvalidPath
		}
	}
	if err := checkGroup(name, ext); err != nil {
		return elimity.Resource{}, err
	}
	g, err = h.update(r.Context(), ns, id, name, ext, replaced, set, add, remove)
	if err != nil {
		return elimity.Resource{}, err
	}
	return h.resource(r, g)
}

// update renames the group (members' refs follow) and changes its
// members: exactly set when replace, else add and remove.
func (h *groupHandler) update(ctx context.Context, ns, id, name, ext string, replace bool, set, add, remove []string) (*rolesyncv1.DirectoryGroup, error) {
	var g *rolesyncv1.DirectoryGroup
	renamed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		if g, err = h.get(ctx, ns, id); err != nil {
			return err
		}
		if !emailaddr.Equal(g.Spec.DisplayName, name) {
			if taken, err := h.byName(ctx, ns, name); err != nil {
				return unavailable(err)
			} else if taken != nil && taken.Name != g.Name {
				return uniqueness("displayName " + name + " is taken by group " + taken.Name)
			}
		}
		if g.Spec.DisplayName == name && g.Spec.ExternalID == ext {
			return nil
		}
		renamed = renamed || g.Spec.DisplayName != name
		base := g.DeepCopy()
		g.Spec.DisplayName, g.Spec.ExternalID = name, ext
		return h.s.client.Patch(ctx, g, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), fieldManager)
	})
	if err != nil {
		return nil, asSCIM(err)
	}
	current, err := h.s.members(ctx, ns, g.Name)
	if err != nil {
		return nil, unavailable(err)
	}
	if replace {
		add, remove = nil, nil
		for _, id := range set {
			if !slices.Contains(current, id) {
				add = append(add, id)
			}
		}
		for _, id := range current {
			if !slices.Contains(set, id) {
				remove = append(remove, id)
			}
		}
	}
	if renamed { // every member's ref carries the name (the claim value)
		for _, id := range current {
			if !slices.Contains(remove, id) && !slices.Contains(add, id) {
				add = append(add, id)
			}
		}
	}
	return g, h.s.changeMembers(ctx, g, add, remove)
}

// Delete removes the group from every member, then the group.
func (h *groupHandler) Delete(r *http.Request, id string) error {
	ns := namespaceOf(r)
	g, err := h.get(r.Context(), ns, id)
	if err != nil {
		return err
	}
	current, err := h.s.members(r.Context(), ns, g.Name)
	if err != nil {
		return unavailable(err)
	}
	if err := h.s.changeMembers(r.Context(), g, nil, current); err != nil {
		return err
	}
	if err := h.s.client.Delete(r.Context(), g); err != nil && !apierrors.IsNotFound(err) {
		return asSCIM(err)
	}
	return nil
}

func (h *groupHandler) get(ctx context.Context, ns, id string) (*rolesyncv1.DirectoryGroup, error) {
	g := &rolesyncv1.DirectoryGroup{}
	if err := h.s.apiReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, g); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) {
			return nil, scimerrors.ScimErrorResourceNotFound(id)
		}
		return nil, unavailable(err)
	}
	return g, nil
}

// byName finds the group with displayName (ASCII case-insensitive).
func (h *groupHandler) byName(ctx context.Context, ns, name string) (*rolesyncv1.DirectoryGroup, error) {
	var list rolesyncv1.DirectoryGroupList
	if err := h.s.client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{proxyuser.DirectoryGroupNameIndex: emailaddr.Fold(name)}); err != nil {
		return nil, err
	}
	for i := range list.Items {
		if emailaddr.Equal(list.Items[i].Spec.DisplayName, name) {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// resource is the SCIM view of a group, its members included unless the
// request excludes them.
func (h *groupHandler) resource(r *http.Request, g *rolesyncv1.DirectoryGroup) (elimity.Resource, error) {
	attrs := elimity.ResourceAttributes{"displayName": g.Spec.DisplayName}
	if !excluded(r, "members") {
		var list rolesyncv1.ProxyUserList
		if err := h.s.client.List(r.Context(), &list, client.InNamespace(g.Namespace), client.MatchingFields{proxyuser.DirectoryGroupIndex: g.Name}); err != nil {
			return elimity.Resource{}, unavailable(err)
		}
		slices.SortFunc(list.Items, func(a, b rolesyncv1.ProxyUser) int { return strings.Compare(a.Name, b.Name) })
		members := make([]any, 0, len(list.Items))
		for _, pu := range list.Items {
			members = append(members, map[string]any{"value": pu.Name, "display": pu.Spec.Directory.UserName, "$ref": "../Users/" + pu.Name})
		}
		attrs["members"] = members
	}
	res := elimity.Resource{ID: g.Name, Attributes: attrs, Meta: meta(g.CreationTimestamp, nil, g.ResourceVersion)}
	if g.Spec.ExternalID != "" {
		res.ExternalID = optional.NewString(g.Spec.ExternalID)
	}
	return res, nil
}

// excluded reports whether the request's excludedAttributes names attr.
func excluded(r *http.Request, name string) bool {
	for a := range strings.SplitSeq(r.URL.Query().Get("excludedAttributes"), ",") {
		if strings.EqualFold(strings.TrimSpace(a), name) {
			return true
		}
	}
	return false
}

// members returns the ids of a group's members (from the cache).
func (s *Server) members(ctx context.Context, ns, group string) ([]string, error) {
	var list rolesyncv1.ProxyUserList
	if err := s.client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{proxyuser.DirectoryGroupIndex: group}); err != nil {
		return nil, err
	}
	ids := make([]string, len(list.Items))
	for i := range list.Items {
		ids[i] = list.Items[i].Name
	}
	return ids, nil
}

// changeMembers adds g to the users add (or refreshes its name there) and
// removes it from the users remove: one optimistic write per user, Workers
// at a time. A user the group is added to has its groups claim from the
// directory from then on (groupsManaged). An unknown user to add is an
// error (400); one to remove is already out.
func (s *Server) changeMembers(ctx context.Context, g *rolesyncv1.DirectoryGroup, add, remove []string) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(s.opts.Workers)
	ref := rolesyncv1.DirectoryGroupRef{ID: g.Name, DisplayName: g.Spec.DisplayName}
	for _, id := range add {
		eg.Go(func() error {
			pu, err := s.updateUserFrom(ctx, g.Namespace, id, true, func(pu *rolesyncv1.ProxyUser) error {
				d := pu.Spec.Directory
				i := slices.IndexFunc(d.Groups, func(r rolesyncv1.DirectoryGroupRef) bool { return r.ID == g.Name })
				switch {
				case i >= 0 && d.Groups[i] == ref && d.GroupsManaged:
					return nil // already a member under this name: a retried request
				case i >= 0:
					d.Groups[i] = ref
				case len(d.Groups) >= rolesyncv1.MaxDirectoryGroups:
					return badValue(fmt.Sprintf("user %s is in %d groups already, the most rolesync keeps", id, rolesyncv1.MaxDirectoryGroups))
				default:
					d.Groups = append(d.Groups, ref)
				}
				d.GroupsManaged = true
				touch(pu)
				return nil
			})
			if err != nil {
				var se scimerrors.ScimError
				if errors.As(err, &se) && se.Status == http.StatusNotFound {
					return badValue("member " + id + " is not a user of this namespace")
				}
				return err
			}
			s.event(pu, "DirectoryGroupAdded", "the directory added the user to group %s", g.Spec.DisplayName)
			return nil
		})
	}
	for _, id := range remove {
		eg.Go(func() error {
			removed := false
			pu, err := s.updateUserFrom(ctx, g.Namespace, id, true, func(pu *rolesyncv1.ProxyUser) error {
				d := pu.Spec.Directory
				n := len(d.Groups)
				d.Groups = slices.DeleteFunc(d.Groups, func(r rolesyncv1.DirectoryGroupRef) bool { return r.ID == g.Name })
				if removed = len(d.Groups) != n; removed {
					touch(pu)
				}
				return nil
			})
			var se scimerrors.ScimError
			if err != nil && errors.As(err, &se) && se.Status == http.StatusNotFound {
				return nil // not a user (any more): not a member
			}
			if err == nil && removed {
				s.event(pu, "DirectoryGroupRemoved", "the directory removed the user from group %s", g.Spec.DisplayName)
			}
			return err
		})
	}
	err := eg.Wait()
	if n := len(add) + len(remove); n > 10 {
		s.record(g, "Normal", "DirectoryMembersChanged", "the directory changed %d members of group %s (%d added or renamed, %d removed)", n, g.Spec.DisplayName, len(add), len(remove))
	}
	return err
}
