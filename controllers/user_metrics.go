package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// The ProxyUser gauges are computed at scrape time from the manager's
// cache (no apiserver request): what the alerts and the dashboard read.
var (
	usersDesc = prometheus.NewDesc("rolesync_proxyusers",
		"ProxyUsers by namespace and role (role=\"denied\" for a denied user, \"\" before the first decision).", []string{"namespace", "role"}, nil)
	notSyncedDesc = prometheus.NewDesc("rolesync_proxyusers_not_synced",
		"ProxyUsers whose Synced condition is not True, by namespace and reason (SyncFailed, WaitingForRow, NoDatabase, ...).", []string{"namespace", "reason"}, nil)
	driftedDesc = prometheus.NewDesc("rolesync_proxyusers_drifted",
		"ProxyUsers whose Drifted condition is True (the database differed from status), by namespace.", []string{"namespace"}, nil)
	waitingDesc = prometheus.NewDesc("rolesync_proxyusers_waiting_for_row_max_seconds",
		"The longest time a ProxyUser of the namespace has waited for LiteLLM to create its row (Synced=False, WaitingForRow).", []string{"namespace"}, nil)
	roleChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolesync_role_changes_total",
		Help: "Changes of a ProxyUser's decided role (status.role or denial), by namespace: the work a mapping edit or a directory change causes.",
	}, []string{"namespace"})
)

// userStats collects the gauges from the reader of the manager that set it
// last (one manager per process in production).
var userStats = &userCollector{}

func init() { metrics.Registry.MustRegister(roleChanges, userStats) }

type userCollector struct {
	mu      sync.Mutex
	reader  client.Reader
	indexer toolscache.Indexer // the informer's store when the cache has one informer: read in place
	now     func() time.Time
}

func (c *userCollector) set(reader client.Reader, indexer toolscache.Indexer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reader, c.indexer, c.now = reader, indexer, time.Now
}

// users are the cached ProxyUsers: pointers into the informer's store
// when there is one (no copy per scrape: 100,000 users would be 60 MB of
// garbage each time), else a list of the cache. Read only.
func (c *userCollector) users(ctx context.Context, reader client.Reader, indexer toolscache.Indexer) ([]*rolesyncv1.ProxyUser, bool) {
	if indexer != nil {
		objs := indexer.List()
		out := make([]*rolesyncv1.ProxyUser, 0, len(objs))
		for _, o := range objs {
			if pu, ok := o.(*rolesyncv1.ProxyUser); ok {
				out = append(out, pu)
			}
		}
		return out, true
	}
	var list rolesyncv1.ProxyUserList
	if err := reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, false // the cache is not started (not the leader yet, or stopping)
	}
	out := make([]*rolesyncv1.ProxyUser, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, true
}

// Describe implements prometheus.Collector.
func (c *userCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{usersDesc, notSyncedDesc, driftedDesc, waitingDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *userCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	reader, indexer, now := c.reader, c.indexer, c.now
	c.mu.Unlock()
	if reader == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, ok := c.users(ctx, reader, indexer)
	if !ok {
		return
	}
	type nsRole struct{ ns, role string }
	type nsReason struct{ ns, reason string }
	users, notSynced := map[nsRole]int{}, map[nsReason]int{}
	drifted, waiting := map[string]int{}, map[string]float64{}
	t := now()
	for _, pu := range list {
		role := string(pu.Status.Role)
		if apimeta.IsStatusConditionTrue(pu.Status.Conditions, rolesyncv1.ConditionDenied) {
			role = "denied"
		}
		users[nsRole{pu.Namespace, role}]++
		if s := apimeta.FindStatusCondition(pu.Status.Conditions, rolesyncv1.ConditionSynced); s != nil && s.Status != "True" {
			notSynced[nsReason{pu.Namespace, s.Reason}]++
			if s.Reason == rolesyncv1.ReasonWaitingForRow {
				waiting[pu.Namespace] = max(waiting[pu.Namespace], t.Sub(s.LastTransitionTime.Time).Seconds())
			}
		}
		if apimeta.IsStatusConditionTrue(pu.Status.Conditions, rolesyncv1.ConditionDrifted) {
			drifted[pu.Namespace]++
		}
	}
	for k, n := range users {
		ch <- prometheus.MustNewConstMetric(usersDesc, prometheus.GaugeValue, float64(n), k.ns, k.role)
	}
	for k, n := range notSynced {
		ch <- prometheus.MustNewConstMetric(notSyncedDesc, prometheus.GaugeValue, float64(n), k.ns, k.reason)
	}
	for ns, n := range drifted {
		ch <- prometheus.MustNewConstMetric(driftedDesc, prometheus.GaugeValue, float64(n), ns)
	}
	for ns, s := range waiting {
		ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, s, ns)
	}
}
