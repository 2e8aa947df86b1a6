package scim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/scim2/filter-parser/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/emailaddr"
	"github.com/rolesync/rolesync/internal/proxyuser"
)

// userHandler serves /Users: a SCIM user is the namespace's ProxyUser for
// the person; its SCIM id is the ProxyUser's name.
type userHandler struct{ s *Server }

// scimUser is what rolesync keeps of a SCIM user.
type scimUser struct {
	UserName, ExternalID, DisplayName, Email string
	Active                                   bool
}

// attr returns the attribute name of attrs equal to name up to case (SCIM
// attribute names are case-insensitive).
func attr(attrs map[string]any, name string) (any, bool) {
	for k, v := range attrs {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

func str(attrs map[string]any, name string) string {
	v, _ := attr(attrs, name)
	s, _ := v.(string)
	return s
}

// boolValue reads a boolean, also as the strings "True"/"False" Entra ID
// sends in PATCH operations.
func boolValue(v any) (bool, error) {
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(b)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, badValue("active must be a boolean")
}

func badValue(detail string) error {
	e := scimerrors.ScimErrorInvalidValue
	e.Detail = detail
	return e
}

// primaryEmail picks the primary email of a SCIM emails list, else the
// work one, else the first.
func primaryEmail(v any) string {
	list, _ := v.([]any)
	var first, work string
	for _, e := range list {
		m, _ := e.(map[string]any)
		value := str(m, "value")
		if value == "" {
			continue
		}
		if p, ok := attr(m, "primary"); ok {
			if b, err := boolValue(p); err == nil && b {
				return value
			}
		}
		if first == "" {
			first = value
		}
		if work == "" && strings.EqualFold(str(m, "type"), "work") {
			work = value
		}
	}
	if work != "" {
		return work
	}
	return first
}

// userFrom reads a user from POST or PUT attributes.
func userFrom(attrs elimity.ResourceAttributes) (scimUser, error) {
	u := scimUser{UserName: str(attrs, "userName"), ExternalID: str(attrs, "externalId"), DisplayName: str(attrs, "displayName"), Active: true}
	if v, ok := attr(attrs, "active"); ok && v != nil {
		b, err := boolValue(v)
		if err != nil {
			return u, err
		}
		u.Active = b
	}
	if v, ok := attr(attrs, "emails"); ok {
		u.Email = primaryEmail(v)
	}
	return u, u.check()
}

// check bounds a user as the ProxyUser schema does.
func (u *scimUser) check() error {
	switch {
	case u.UserName == "" || len(u.UserName) > 320 || !rolesyncv1.Printable(u.UserName):
		return badValue("userName: required, 1 to 320 printable characters")
	case len(u.ExternalID) > 256 || len(u.DisplayName) > 256:
		return badValue("externalId and displayName: at most 256 characters")
	case u.Email != "" && !validEmail(u.Email):
		return badValue("emails: the primary email is not an email address")
	}
	return nil
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && len(s) <= 320
}

// bindingEmail is the email that binds a directory user to a ProxyUser:
// the primary email, else a userName that is an email address.
func (u scimUser) bindingEmail() string {
	if u.Email != "" {
		return u.Email
	}
	if validEmail(u.UserName) {
		return u.UserName
	}
	return ""
}

func (h *userHandler) userID(u scimUser) (string, error) {
	if h.s.opts.UserIDAttribute == UserIDFromExternalID {
		if u.ExternalID == "" {
			return "", badValue("externalId: required (--scim-user-id-attribute=externalId makes it the LiteLLM user_id)")
		}
		return u.ExternalID, nil
	}
	return u.UserName, nil
}

// Create finds the person's ProxyUser (by identity, else by email) and
// binds it to the directory, or creates one.
func (h *userHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	ns := namespaceOf(r)
	u, err := userFrom(attrs)
	if err != nil {
		return elimity.Resource{}, err
	}
	userID, err := h.userID(u)
	if err != nil {
		return elimity.Resource{}, err
	}
	if taken, err := h.byIndex(r.Context(), ns, proxyuser.DirectoryUserNameIndex, emailaddr.Fold(u.UserName)); err != nil {
		return elimity.Resource{}, unavailable(err)
	} else if len(taken) > 0 {
		return elimity.Resource{}, uniqueness("userName " + u.UserName + " is taken by user " + taken[0].Name)
	}
	var out *rolesyncv1.ProxyUser
	err = retry.OnError(retry.DefaultRetry, writeRace, func() error {
		var err error
		out, err = h.bind(r.Context(), ns, userID, u)
		return err
	})
	if err != nil {
		return elimity.Resource{}, asSCIM(err)
	}
	h.s.event(out, "DirectoryProvisioned", "the directory provisioned user %s", u.UserName)
	return userResource(out), nil
}

// bind binds u to the ProxyUser of its identity, else to the one whose
// email is u's (never to two, never to one another directory user holds),
// else creates one.
func (h *userHandler) bind(ctx context.Context, ns, userID string, u scimUser) (*rolesyncv1.ProxyUser, error) {
	name := proxyuser.Name(h.s.opts.Issuer, userID)
	existing := &rolesyncv1.ProxyUser{}
	err := h.s.apiReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, existing)
	switch {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return nil, err
	case existing.Spec.UserID != userID || existing.Spec.Issuer != h.s.opts.Issuer:
		return nil, uniqueness("ProxyUser " + name + " belongs to another user")
	}
	if existing == nil {
		if email := u.bindingEmail(); email != "" {
			candidates, err := h.byIndex(ctx, ns, proxyuser.EmailIndex, emailaddr.Fold(email))
			if err != nil {
				return nil, err
			}
			candidates = slices.DeleteFunc(candidates, func(pu rolesyncv1.ProxyUser) bool { return !emailaddr.Equal(pu.Spec.Email, email) })
			switch len(candidates) {
			case 0:
			case 1:
				existing = &candidates[0]
			default:
				names := make([]string, len(candidates))
				for i := range candidates {
					names[i] = candidates[i].Name
					h.s.warn(&candidates[i], "DirectoryAmbiguous", "the directory user %s has the email of several ProxyUsers (%s): bound to none", u.UserName, strings.Join(names, ", "))
				}
				slices.Sort(names)
				return nil, uniqueness("the email " + email + " is the email of several ProxyUsers (" + strings.Join(names, ", ") + "): resolve by deleting or merging them")
			}
		}
	}
	now := metav1.NewMicroTime(h.s.now().UTC().Truncate(time.Microsecond))
	dir := &rolesyncv1.DirectoryUser{UserName: u.UserName, ExternalID: u.ExternalID, DisplayName: u.DisplayName, Active: u.Active, UpdatedAt: &now}
	if existing == nil {
		pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Finalizers: []string{proxyuser.Finalizer}},
			Spec: rolesyncv1.ProxyUserSpec{UserID: userID, Issuer: h.s.opts.Issuer, Email: u.Email, Directory: dir}}
		return pu, h.s.client.Create(ctx, pu, fieldManager)
	}
	if !existing.DeletionTimestamp.IsZero() {
		return nil, scimerrors.ScimError{Status: http.StatusConflict, Detail: "the user's ProxyUser is being deleted; retry"}
	}
	if d := existing.Spec.Directory; d != nil && !d.Deleted {
		// Already a directory user: a retried create, or another userName
		// for the same person.
		return nil, uniqueness("the person's ProxyUser " + existing.Name + " is directory user " + d.UserName)
	}
	if d := existing.Spec.Directory; d != nil { // re-provisioned: its groups stay until the directory says otherwise
		dir.Groups, dir.GroupsManaged = d.Groups, d.GroupsManaged
	}
	base := existing.DeepCopy()
	existing.Spec.Directory = dir
	if existing.Spec.Email == "" {
		existing.Spec.Email = u.Email
	}
	return existing, h.s.client.Patch(ctx, existing, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), fieldManager)
}

// Get returns a directory user.
func (h *userHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	pu, err := h.s.getUser(r.Context(), namespaceOf(r), id)
	if err != nil {
		return elimity.Resource{}, err
	}
	return userResource(pu), nil
}

// GetAll lists directory users: an equality filter on userName or
// externalId reads an index; any other filter is applied to every user.
func (h *userHandler) GetAll(r *http.Request, params elimity.ListRequestParams) (elimity.Page, error) {
	ns := namespaceOf(r)
	var users []rolesyncv1.ProxyUser
	var err error
	if name, value, ok := equality(params); ok && strings.EqualFold(name, "userName") {
		users, err = h.byIndex(r.Context(), ns, proxyuser.DirectoryUserNameIndex, emailaddr.Fold(value))
		users = slices.DeleteFunc(users, func(pu rolesyncv1.ProxyUser) bool { return !emailaddr.Equal(pu.Spec.Directory.UserName, value) })
	} else if ok && strings.EqualFold(name, "externalId") {
		users, err = h.byIndex(r.Context(), ns, proxyuser.DirectoryExternalIDIndex, value)
	} else {
		var list rolesyncv1.ProxyUserList
		err = h.s.client.List(r.Context(), &list, client.InNamespace(ns))
		users = slices.DeleteFunc(list.Items, func(pu rolesyncv1.ProxyUser) bool { return pu.Spec.Directory == nil || pu.Spec.Directory.Deleted })
	}
	if err != nil {
		return elimity.Page{}, unavailable(err)
	}
	slices.SortFunc(users, func(a, b rolesyncv1.ProxyUser) int { return strings.Compare(a.Name, b.Name) })
	resources := make([]elimity.Resource, 0, len(users))
	for i := range users {
		res := userResource(&users[i])
		if params.FilterValidator != nil && params.FilterValidator.PassesFilter(withID(res)) != nil {
			continue
		}
		resources = append(resources, res)
	}
	return page(resources, params), nil
}

// Replace replaces a directory user's attributes (its groups stay: they
// are the groups' to change).
func (h *userHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	u, err := userFrom(attrs)
	if err != nil {
		return elimity.Resource{}, err
	}
	pu, err := h.s.updateUser(r.Context(), namespaceOf(r), id, func(pu *rolesyncv1.ProxyUser) error {
		if err := h.unique(r.Context(), pu, u.UserName); err != nil {
			return err
		}
		setUser(pu, u)
		return nil
	})
	if err != nil {
		return elimity.Resource{}, err
	}
	return userResource(pu), nil
}

// unique refuses a userName another directory user of the namespace holds.
func (h *userHandler) unique(ctx context.Context, pu *rolesyncv1.ProxyUser, userName string) error {
	taken, err := h.byIndex(ctx, pu.Namespace, proxyuser.DirectoryUserNameIndex, emailaddr.Fold(userName))
	if err != nil {
		return unavailable(err)
	}
	for _, o := range taken {
		if o.Name != pu.Name {
			return uniqueness("userName " + userName + " is taken by user " + o.Name)
		}
	}
	return nil
}

// setUser writes u onto pu's directory data.
func setUser(pu *rolesyncv1.ProxyUser, u scimUser) {
	d := pu.Spec.Directory
	was := d.Active
	d.UserName, d.ExternalID, d.DisplayName, d.Active = u.UserName, u.ExternalID, u.DisplayName, u.Active
	if u.Email != "" {
		pu.Spec.Email = u.Email
	}
	if was != d.Active {
		touch(pu)
	}
}

// touch records that the directory spoke about the user's claims now.
func touch(pu *rolesyncv1.ProxyUser) {
	now := metav1.NewMicroTime(time.Now().UTC().Truncate(time.Microsecond))
	pu.Spec.Directory.UpdatedAt = &now
}

// Patch applies RFC 7644 PATCH operations as Entra ID and Okta send them:
// ops in any case, booleans as strings, path-less values, and
// emails[type eq "work"].value paths.
func (h *userHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	pu, err := h.s.updateUser(r.Context(), namespaceOf(r), id, func(pu *rolesyncv1.ProxyUser) error {
		d := pu.Spec.Directory
		u := scimUser{UserName: d.UserName, ExternalID: d.ExternalID, DisplayName: d.DisplayName, Active: d.Active, Email: pu.Spec.Email}
		for _, op := range ops {
			if err := patchUser(&u, op); err != nil {
				return err
			}
		}
		if err := u.check(); err != nil {
			return err
		}
		if !emailaddr.Equal(u.UserName, d.UserName) {
			if err := h.unique(r.Context(), pu, u.UserName); err != nil {
				return err
			}
		}
		setUser(pu, u)
		return nil
	})
	if err != nil {
		return elimity.Resource{}, err
	}
	return userResource(pu), nil
}

// patchUser applies one operation to u.
func patchUser(u *scimUser, op elimity.PatchOperation) error {
	kind := strings.ToLower(op.Op)
	if op.Path == nil {
		if kind == elimity.PatchOperationRemove {
			return scimerrors.ScimErrorNoTarget
		}
		values, ok := op.Value.(map[string]any)
		if !ok {
			return badValue("a PATCH without path needs an object value")
		}
		for k, v := range values {
			p, err := filter.ParsePath([]byte(k))
			if err != nil {
				return scimerrors.ScimErrorInvalidPath
			}
			if err := setUserAttr(u, kind, p, v); err != nil {
				return err
			}
		}
		return nil
	}
	return setUserAttr(u, kind, *op.Path, op.Value)
}

// setUserAttr applies add/replace (value) or remove to one attribute path.
func setUserAttr(u *scimUser, kind string, p filter.Path, v any) error {
	name := strings.ToLower(p.AttributePath.AttributeName)
	remove := kind == elimity.PatchOperationRemove
	text := func() (string, error) {
		if remove {
			return "", nil
		}
		if s, ok := v.(string); ok {
			return s, nil
		}
		if list, ok := v.([]any); ok && len(list) == 1 { // the library wraps single values of multi-valued paths
			if s, ok := list[0].(string); ok {
				return s, nil
			}
		}
		return "", badValue(p.String() + ": a string is required")
	}
	var err error
	switch name {
	case "active":
		if remove {
			return scimerrors.ScimErrorMutability
		}
		u.Active, err = boolValue(v)
	case "username":
		if remove {
			return scimerrors.ScimErrorMutability
		}
		u.UserName, err = text()
	case "externalid":
		u.ExternalID, err = text()
	case "displayname":
		u.DisplayName, err = text()
	case "emails":
		switch {
		case remove:
			u.Email = ""
		case p.ValueExpression != nil || p.SubAttribute != nil || p.AttributePath.SubAttribute != nil: // emails[type eq "work"].value
			u.Email, err = text()
		default:
			if e := primaryEmail(v); e != "" {
				u.Email = e
			}
		}
	default:
		// name.*, title, addresses, the enterprise extension...: accepted,
		// not kept (rolesync decides from groups and activation).
	}
	return err
}

// Delete deprovisions the user: the controller demotes the row, blocks
// every key, then deletes the ProxyUser. The user is gone for SCIM at once.
func (h *userHandler) Delete(r *http.Request, id string) error {
	pu, err := h.s.updateUser(r.Context(), namespaceOf(r), id, func(pu *rolesyncv1.ProxyUser) error {
		pu.Spec.Directory.Deleted, pu.Spec.Directory.Active = true, false
		touch(pu)
		return nil
	})
	if err != nil {
		return err
	}
	h.s.warn(pu, "DirectoryDeleted", "the directory deleted user %s: deprovisioned, the ProxyUser goes once the row is demoted and the keys are blocked", pu.Spec.Directory.UserName)
	return nil
}

// byIndex lists the ProxyUsers of ns whose index field has value.
func (h *userHandler) byIndex(ctx context.Context, ns, index, value string) ([]rolesyncv1.ProxyUser, error) {
	return proxyuser.ByIndex(ctx, h.s.client, ns, index, value)
}

// readUser reads a directory user from the cache when cached (falling
// back to the apiserver for one the cache has not seen yet), else from the
// apiserver.
func (s *Server) readUser(ctx context.Context, ns, id string, cached bool) (*rolesyncv1.ProxyUser, error) {
	if cached {
		pu := &rolesyncv1.ProxyUser{}
		if err := s.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, pu); err == nil {
			if pu.Spec.Directory == nil || pu.Spec.Directory.Deleted || !pu.DeletionTimestamp.IsZero() {
				return nil, scimerrors.ScimErrorResourceNotFound(id)
			}
			return pu, nil
		}
	}
	return s.getUser(ctx, ns, id)
}

// getUser reads a directory user from the apiserver (a resource just
// written is found at once).
func (s *Server) getUser(ctx context.Context, ns, id string) (*rolesyncv1.ProxyUser, error) {
	pu := &rolesyncv1.ProxyUser{}
	if err := s.apiReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, pu); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) {
			return nil, scimerrors.ScimErrorResourceNotFound(id)
		}
		return nil, unavailable(err)
	}
	if pu.Spec.Directory == nil || pu.Spec.Directory.Deleted || !pu.DeletionTimestamp.IsZero() {
		return nil, scimerrors.ScimErrorResourceNotFound(id)
	}
	return pu, nil
}

// updateUser reads a directory user, lets change edit it, and writes it
// with its resourceVersion as a precondition, again from a fresh read
// when another writer was first.
func (s *Server) updateUser(ctx context.Context, ns, id string, change func(*rolesyncv1.ProxyUser) error) (*rolesyncv1.ProxyUser, error) {
	return s.updateUserFrom(ctx, ns, id, false, change)
}

// updateUserFrom is updateUser; cached starts from the cache (a group's
// many members: one request per member instead of two), and every retry
// after a conflict reads the apiserver.
func (s *Server) updateUserFrom(ctx context.Context, ns, id string, cached bool, change func(*rolesyncv1.ProxyUser) error) (*rolesyncv1.ProxyUser, error) {
	var out *rolesyncv1.ProxyUser
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pu, err := s.readUser(ctx, ns, id, cached)
		cached = false
		if err != nil {
			return err
		}
		base := pu.DeepCopy()
		if err := change(pu); err != nil {
			return err
		}
		out = pu
		if equalSpec(base, pu) {
			return nil // a retried request: nothing to write
		}
		return s.client.Patch(ctx, pu, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), fieldManager)
	})
	if err != nil {
		return nil, asSCIM(err)
	}
	return out, nil
}

func equalSpec(a, b *rolesyncv1.ProxyUser) bool {
	return a.Spec.Email == b.Spec.Email && directoryEqual(a.Spec.Directory, b.Spec.Directory)
}

func directoryEqual(a, b *rolesyncv1.DirectoryUser) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.UserName == b.UserName && a.ExternalID == b.ExternalID && a.DisplayName == b.DisplayName && a.Active == b.Active &&
		a.Deleted == b.Deleted && a.GroupsManaged == b.GroupsManaged && slices.Equal(a.Groups, b.Groups)
}

// userResource is the SCIM view of a directory user.
func userResource(pu *rolesyncv1.ProxyUser) elimity.Resource {
	d := pu.Spec.Directory
	attrs := elimity.ResourceAttributes{"userName": d.UserName, "active": d.Active}
	if d.DisplayName != "" {
		attrs["displayName"] = d.DisplayName
	}
	if pu.Spec.Email != "" {
		attrs["emails"] = []any{map[string]any{"value": pu.Spec.Email, "primary": true, "type": "work"}}
	}
	if len(d.Groups) > 0 {
		groups := make([]any, len(d.Groups))
		for i, g := range d.Groups {
			groups[i] = map[string]any{"value": g.ID, "display": g.DisplayName, "$ref": "../Groups/" + url.PathEscape(g.ID)}
		}
		attrs["groups"] = groups
	}
	res := elimity.Resource{ID: pu.Name, Attributes: attrs, Meta: meta(pu.CreationTimestamp, d.UpdatedAt, pu.ResourceVersion)}
	if d.ExternalID != "" {
		res.ExternalID = optional.NewString(d.ExternalID)
	}
	return res
}

func meta(created metav1.Time, updated *metav1.MicroTime, version string) elimity.Meta {
	c := created.Time
	m := elimity.Meta{Created: &c, LastModified: &c, Version: fmt.Sprintf("W/%q", version)}
	if updated != nil {
		u := updated.Time
		m.LastModified = &u
	}
	return m
}

// withID is a resource's attributes with id and externalId, for filters.
func withID(r elimity.Resource) map[string]any {
	out := make(map[string]any, len(r.Attributes)+2)
	for k, v := range r.Attributes {
		out[k] = v
	}
	out["id"] = r.ID
	if r.ExternalID.Present() {
		out["externalId"] = r.ExternalID.Value()
	}
	return out
}

// equality returns the attribute and value of a filter "attr eq value".
func equality(params elimity.ListRequestParams) (string, string, bool) {
	if params.FilterValidator == nil {
		return "", "", false
	}
	e, ok := params.FilterValidator.GetFilter().(*filter.AttributeExpression)
	if !ok || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil || e.AttributePath.URIPrefix != nil {
		return "", "", false
	}
	v, ok := e.CompareValue.(string)
	return e.AttributePath.AttributeName, v, ok
}

// page cuts one page (startIndex, count) out of resources.
func page(resources []elimity.Resource, params elimity.ListRequestParams) elimity.Page {
	start := max(params.StartIndex, 1) - 1
	count := min(max(params.Count, 0), MaxResults)
	out := elimity.Page{TotalResults: len(resources), Resources: []elimity.Resource{}}
	if start < len(resources) {
		out.Resources = resources[start:min(len(resources), start+count)]
	}
	return out
}

func uniqueness(detail string) error {
	e := scimerrors.ScimErrorUniqueness
	e.Detail = detail
	return e
}

// unavailable is an apiserver failure: 503, retried by the identity
// provider. The cause stays out of the answer (it may name internals).
func unavailable(_ error) error {
	return scimerrors.ScimError{Status: http.StatusServiceUnavailable, Detail: "the Kubernetes API is unavailable; retry"}
}

// asSCIM passes SCIM errors through and maps apiserver failures.
func asSCIM(err error) error {
	var se scimerrors.ScimError
	switch {
	case errors.As(err, &se):
		return se
	case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
		return scimerrors.ScimError{Status: http.StatusConflict, Detail: "the user changed while writing it; retry"}
	case apierrors.IsInvalid(err):
		return badValue("the ProxyUser was refused: " + err.Error())
	}
	return unavailable(err)
}

// writeRace: the object changed (or appeared) between the read and the write.
func writeRace(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
