// Package webhook holds the admission webhooks: RoleMapping validation.
package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// +kubebuilder:webhook:path=/validate-rolesync-dev-v1-rolemapping,mutating=false,failurePolicy=fail,sideEffects=None,groups=rolesync.dev,resources=rolemappings,verbs=create;update,versions=v1,name=vrolemapping.rolesync.dev,admissionReviewVersions=v1,timeoutSeconds=10

// RoleMappingValidator refuses a RoleMapping that cannot be compiled: an
// invalid regex or glob, CEL that does not compile or does not return bool,
// a role above maxRole, a duplicate rule or an unparseable claim path. Each
// error names its field, as schema errors do.
type RoleMappingValidator struct{}

var _ admission.Validator[*rolesyncv1.RoleMapping] = RoleMappingValidator{}

// SetupRoleMappingWebhookWithManager registers the validator with the
// manager's webhook server.
func SetupRoleMappingWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &rolesyncv1.RoleMapping{}).
		WithValidator(RoleMappingValidator{}).
		Complete()
}

// ValidateCreate validates a new RoleMapping.
func (RoleMappingValidator) ValidateCreate(_ context.Context, rm *rolesyncv1.RoleMapping) (admission.Warnings, error) {
	return nil, validate(rm)
}

// ValidateUpdate validates a changed RoleMapping.
func (RoleMappingValidator) ValidateUpdate(_ context.Context, _, rm *rolesyncv1.RoleMapping) (admission.Warnings, error) {
	return nil, validate(rm)
}

// ValidateDelete allows every deletion.
func (RoleMappingValidator) ValidateDelete(context.Context, *rolesyncv1.RoleMapping) (admission.Warnings, error) {
	return nil, nil
}

func validate(rm *rolesyncv1.RoleMapping) error {
	if errs := rolemap.Validate(rm); len(errs) > 0 {
		return apierrors.NewInvalid(rolesyncv1.GroupVersion.WithKind("RoleMapping").GroupKind(), rm.Name, errs)
	}
	return nil
}
