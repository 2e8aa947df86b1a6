package deploy

import (
	"context"
	"fmt"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(rolesyncv1.AddToScheme(scheme))
}

// foreignKinds are the kinds of other projects the chart renders
// (cert-manager, the Prometheus Operator): group, version, kind, plural.
var foreignKinds = [][4]string{
	{"cert-manager.io", "v1", "Issuer", "issuers"},
	{"cert-manager.io", "v1", "Certificate", "certificates"},
	{"monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"},
	{"monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"},
}

// foreignCRDs are stand-ins for those projects' CRDs: their group, version
// and kind, any fields (their schemas are theirs to validate).
func foreignCRDs() []*apiextensionsv1.CustomResourceDefinition {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, k := range foreignKinds {
		out = append(out, &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: k[3] + "." + k[0]},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: k[0], Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: k[2], ListKind: k[2] + "List", Plural: k[3], Singular: strings.ToLower(k[2])},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: k[1], Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: ptr.To(true)}}}},
			},
		})
	}
	return out
}

func foreignCRDsServed(ctx context.Context, c client.Client) error {
	for _, k := range foreignKinds {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: k[3] + "." + k[0]}, crd); err != nil {
			return err
		}
		established := false
		for _, cond := range crd.Status.Conditions {
			established = established || (cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue)
		}
		if !established {
			return fmt.Errorf("%s not established", crd.Name)
		}
	}
	return nil
}
