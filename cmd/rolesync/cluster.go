package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/review"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// kubeFlags are kubectl's conventions, so `kubectl rolesync ...` behaves
// like any kubectl command: --kubeconfig, --context, -n/--namespace,
// -A/--all-namespaces.
type kubeFlags struct {
	kubeconfig, context, namespace string
	allNamespaces                  bool
}

func (k *kubeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&k.context, "context", "", "the kubeconfig context to use")
	fs.StringVar(&k.namespace, "namespace", "", "the namespace (default: the context's namespace)")
	fs.StringVar(&k.namespace, "n", "", "short for --namespace")
	fs.BoolVar(&k.allNamespaces, "all-namespaces", false, "every namespace")
	fs.BoolVar(&k.allNamespaces, "A", false, "short for --all-namespaces")
}

func (k *kubeFlags) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	overrides.Context.Namespace = k.namespace
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// resolvedNamespace is -n, else the kubeconfig context's namespace, else
// "default" (kubectl's rule).
func (k *kubeFlags) resolvedNamespace() (string, error) {
	if k.namespace != "" {
		return k.namespace, nil
	}
	ns, _, err := k.clientConfig().Namespace()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	return ns, nil
}

// cluster reads RoleMappings and ProxyUsers from the live cluster.
type cluster struct {
	c client.Reader
}

func (k *kubeFlags) connect() (*cluster, error) {
	cfg, err := k.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.Timeout = 60 * time.Second
	scheme := runtime.NewScheme()
	if err := rolesyncv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	return &cluster{c: c}, nil
}

// scope lists what to read: every namespace ("" = all), or one.
func listOptions(namespace string) []client.ListOption {
	if namespace == "" {
		return nil
	}
	return []client.ListOption{client.InNamespace(namespace)}
}

// users lists the ProxyUsers of namespace ("" = every namespace): one list call.
func (c *cluster) users(ctx context.Context, namespace string) ([]rolesyncv1.ProxyUser, error) {
	var list rolesyncv1.ProxyUserList
	if err := c.c.List(ctx, &list, listOptions(namespace)...); err != nil {
		return nil, fmt.Errorf("list ProxyUsers: %w", err)
	}
	return list.Items, nil
}

// mappings returns the mappings in force of namespace ("" = every
// namespace), one list call: for each RoleMapping the generation the
// controller decides with (its spec, or the last valid generation its
// status records when the spec is invalid). warn hears of mappings that
// decide nothing.
func (c *cluster) mappings(ctx context.Context, namespace string, warn func(string)) ([]*rolemap.Mapping, error) {
	var list rolesyncv1.RoleMappingList
	if err := c.c.List(ctx, &list, listOptions(namespace)...); err != nil {
		return nil, fmt.Errorf("list RoleMappings: %w", err)
	}
	var out []*rolemap.Mapping
	for i := range list.Items {
		rm := &list.Items[i]
		m, errs := rolemap.MappingInForce(rm)
		switch {
		case m == nil:
			warn(fmt.Sprintf("RoleMapping %s/%s is invalid and no generation of it was ever valid: it decides nothing (%v)", rm.Namespace, rm.Name, errs.ToAggregate()))
			continue
		case len(errs) > 0:
			warn(fmt.Sprintf("RoleMapping %s/%s is invalid: its generation %d stays in force (%v)", rm.Namespace, rm.Name, rm.Status.GenerationInForce, errs.ToAggregate()))
		}
		out = append(out, m)
	}
	return out, nil
}

// engines groups mappings per namespace.
func engines(ms []*rolemap.Mapping) review.Engines {
	per := map[string][]*rolemap.Mapping{}
	for _, m := range ms {
		per[m.Namespace] = append(per[m.Namespace], m)
	}
	out := review.Engines{}
	for ns, list := range per {
		out[ns] = rolemap.NewEngine(list...)
	}
	return out
}

// overlay is base with proposed replacing or adding mappings by
// namespace/name; with prune, a namespace that has proposed mappings holds
// exactly those (the others are deleted).
func overlay(base, proposed []*rolemap.Mapping, prune bool) []*rolemap.Mapping {
	replaced := map[string]bool{}
	pruned := map[string]bool{}
	for _, m := range proposed {
		replaced[m.Key()] = true
		pruned[m.Namespace] = prune
	}
	out := slices.Clone(proposed)
	for _, m := range base {
		if !replaced[m.Key()] && !pruned[m.Namespace] {
			out = append(out, m)
		}
	}
	return out
}
