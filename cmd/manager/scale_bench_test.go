package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolswatch "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/login/authn"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/testing/parallel"
	"github.com/rolesync/rolesync/internal/testing/pgtest"
)

// scaleConcurrency is the manager's --max-concurrent-reconciles in the
// scale run, and the concurrency of the raw write loops it is compared with.
const scaleConcurrency = 16

// BenchmarkScale runs the manager binary on the real control plane and
// LiteLLM's schema with ROLESYNC_SCALE_USERS ProxyUsers (default 100,000)
// over ROLESYNC_SCALE_NAMESPACES namespaces (default 4), each with its
// LiteLLM row, and reports in one run (`make bench-scale`):
//
//   - first-sync: a manager's first convergence of every new user;
//   - restart: a second manager from start until every user was reconciled
//     once (caches synced, first pass done), with the object writes, row
//     writes and database queries that pass cost;
//   - resync: one resync period (ROLESYNC_SCALE_RESYNC, default 5m) of
//     unchanged users: object writes, row writes, queries per second;
//   - a mapping edit in every namespace moving every user, against the raw
//     write limit measured in the same run (a plain client's patches and a
//     plain pgx loop's UPDATEs, each at the manager's concurrency);
//   - login latency p50/p99 while the move runs, against idle;
//   - the managers' peak and final RSS (/proc VmHWM, VmRSS): the first
//     sync's, and the restarted manager's after the move.
//
// ROLESYNC_SCALE_HEAP_PROFILE names a file for the manager's heap profile
// (go tool pprof), ROLESYNC_SCALE_APISERVER_HEAP_PROFILE one for the
// apiserver's after the move, ROLESYNC_SCALE_APISERVER_PROFILE and
// ROLESYNC_SCALE_MANAGER_PROFILE ones for 20-second CPU profiles of the
// apiserver and the manager during it;
// ROLESYNC_SCALE_MEMORY_LIMIT_MIB runs the managers as in a container with
// that memory limit (GOMEMLIMIT at softLimit of it, as the manager sets it
// from its cgroup).
func BenchmarkScale(b *testing.B) {
	n := envInt(b, "ROLESYNC_SCALE_USERS", 100000)
	nsCount := envInt(b, "ROLESYNC_SCALE_NAMESPACES", 4)
	resync := envDuration(b, "ROLESYNC_SCALE_RESYNC", 5*time.Minute)
	ctx := context.Background()
	report := func(v float64, unit string) {
		b.ReportMetric(v, unit)
		b.Logf("%-28s %.3f", unit, v)
	}

	// The cluster and the database, as a company's would be.
	dbURL, _ := newDatabase(b)
	namespaces := make([]string, nsCount)
	mappings := make([]*rolesyncv1.RoleMapping, nsCount)
	for i := range namespaces {
		namespaces[i] = newNamespace(b)
		mappings[i] = createStaffMapping(b, namespaces[i])
	}
	loginNS := newNamespace(b)
	createStaffMapping(b, loginNS)
	const loginUserCount = 2000
	t0 := time.Now()
	users := scaleUsers(namespaces, n)
	loginUsers := scaleLoginUsers(loginNS, loginUserCount)
	seedScaleRows(b, dbURL, append(users, loginUsers...))
	createScaleUsers(b, users)
	createScaleUsers(b, loginUsers)
	b.Logf("created %d users in %d namespaces (+%d login users) in %s", n, nsCount, loginUserCount, time.Since(t0).Round(time.Second))
	total := n + loginUserCount

	// First sync: a manager meets every user for the first time.
	flags := []string{"--max-concurrent-reconciles", strconv.Itoa(scaleConcurrency), "--kube-api-qps", "5000", "--kube-api-burst", "10000",
		"--resync-period", resync.String()}
	env := []string{"DATABASE_URL=" + dbURL}
	if mib := envInt(b, "ROLESYNC_SCALE_MEMORY_LIMIT_MIB", 0); mib > 0 {
		// As in a container with limits.memory of mib: the manager sets Go's
		// soft limit from it (setMemoryLimit); here the harness does.
		env = append(env, fmt.Sprintf("GOMEMLIMIT=%d", softLimit(int64(mib)<<20)))
		b.Logf("managers run as in a %d MiB container", mib)
	}
	t0 = time.Now()
	first := startManager(b, cfg.Host, env, flags...)
	waitScaleSettled(b, dbURL, total, rolesyncv1.RoleInternalUser)
	report(time.Since(t0).Seconds(), "s/first-sync")
	_, firstHWM := procMemory(b, first.Cmd.Process.Pid)
	report(firstHWM, "MiB-peak-rss-first-sync")
	first.Kill()

	// Restart: a new manager over settled users writes nothing.
	versions := resourceVersions(b)
	secret := "scale-bench-secret-0123456789abcdef0123456"
	secretFile := b.TempDir() + "/secrets"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	loginAddr, metricsAddr, pprofAddr := freeAddr(b), freeAddr(b), freeAddr(b)
	t0 = time.Now()
	m := startManager(b, cfg.Host, env, append(flags, "--metrics-bind-address", metricsAddr, "--metrics-secure=false",
		"--pprof-bind-address", pprofAddr, "--login-insecure", "--login-bind-address", loginAddr, "--login-hmac-secret-file", secretFile)...)
	before := scrape(b, metricsAddr)
	waitFirstPass(b, m, metricsAddr, total)
	pass := time.Since(t0)
	after := scrape(b, metricsAddr)
	report(pass.Seconds(), "s/restart-first-pass")
	report(float64(changedObjects(b, versions)), "restart-object-writes")
	report(after.queries("apply")-before.queries("apply"), "restart-row-writes")
	report(after.allQueries()-before.allQueries(), "restart-db-queries")

	// A resync period of unchanged users.
	versions = resourceVersions(b)
	before = scrape(b, metricsAddr)
	time.Sleep(resync * 11 / 10)
	after = scrape(b, metricsAddr)
	secs := (resync * 11 / 10).Seconds()
	report(float64(changedObjects(b, versions)), "resync-object-writes")
	report(after.queries("apply")-before.queries("apply"), "resync-row-writes")
	report(after.allQueries()-before.allQueries(), "resync-db-queries")
	report((after.allQueries()-before.allQueries())/secs, "resync-db-queries/s")
	report((after.sum("rolesync_drift_checked_users_total")-before.sum("rolesync_drift_checked_users_total"))/float64(total), "resync-users-checked-ratio")

	// Logins while idle, then during a mass move.
	logins := &loginLoad{addr: loginAddr, ns: loginNS, secret: []byte(secret), users: loginUserCount}
	before, apiBefore, cpuIdle, idleStart := scrape(b, metricsAddr), scrapeAPIServer(b), cpuByCommand(b), time.Now()
	idle := logins.run(b, 60*time.Second, nil) // 1,200 logins: a p99 of 12 samples, not 4
	after = scrape(b, metricsAddr)
	// What the login load alone (and the resync) keeps busy: the floor
	// under the move's and the raw loop's shares below.
	cpuIdleAfter, idleSecs := cpuByCommand(b), time.Since(idleStart).Seconds()
	for _, c := range []string{"idle", "kube-apiserver", "etcd", "postgres", "manager", "harness"} {
		report((cpuIdleAfter[c]-cpuIdle[c])/idleSecs, "cores-"+c+"-logins-only")
	}
	report(percentile(idle, 50), "ms/login-p50-idle")
	report(percentile(idle, 99), "ms/login-p99-idle")
	reportLoginShares(report, before, after, "idle")
	reportAPIServerShares(report, apiBefore, scrapeAPIServer(b), "idle")

	w := watchAllUsers(b, currentRV(b))
	stop := make(chan struct{})
	var during []float64
	var loadDone sync.WaitGroup
	loadDone.Add(1)
	pgStatements := os.Getenv("ROLESYNC_SCALE_PG_STATEMENTS") != ""
	if pgStatements {
		resetStatements(b, dbURL)
	}
	before, cpuBefore, apiBefore := scrape(b, metricsAddr), cpuByCommand(b), scrapeAPIServer(b)
	go func() { defer loadDone.Done(); during = logins.run(b, time.Hour, stop) }()
	start := time.Now()
	for _, rm := range mappings {
		patch := client.MergeFrom(rm.DeepCopy())
		rm.Spec.Rules[0].Role = rolesyncv1.RoleProxyAdminViewer
		if err := k8s.Patch(ctx, rm, patch); err != nil {
			b.Fatal(err)
		}
	}
	// Where the CPU goes while the move runs (20 s profiles, 10 s in;
	// waited for below: a goroutine may not report after the benchmark ends).
	var profiling sync.WaitGroup
	if path := os.Getenv("ROLESYNC_SCALE_APISERVER_PROFILE"); path != "" {
		profiling.Go(func() { time.Sleep(10 * time.Second); saveAPIServerPprof(b, "profile", "seconds=20", path) })
	}
	if path := os.Getenv("ROLESYNC_SCALE_MANAGER_PROFILE"); path != "" {
		profiling.Go(func() {
			time.Sleep(10 * time.Second)
			if err := fetchTo(http.DefaultClient, "http://"+pprofAddr+"/debug/pprof/profile?seconds=20", path); err != nil {
				b.Error(err)
			}
		})
	}
	var limits []float64 // the status write bound during the move
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Second): // a scrape interval
				limits = append(limits, scrape(b, metricsAddr).sum("rolesync_proxyuser_status_write_limit"))
			}
		}
	}()
	took := waitMoved(b, w, n, rolesyncv1.RoleProxyAdminViewer).Sub(start)
	close(stop)
	loadDone.Wait()
	<-sampled
	profiling.Wait()
	moved := scrape(b, metricsAddr)
	reportLoginShares(report, before, moved, "move")
	apiMoved := scrapeAPIServer(b)
	reportAPIServerShares(report, apiBefore, apiMoved, "move")
	report(apiServerWrites(b, apiBefore, apiMoved)/float64(n), "apiserver-writes-per-moved-user")
	// The manager's collector: how often it ran, and the heap it kept.
	report((moved.sum("go_gc_duration_seconds_count")-before.sum("go_gc_duration_seconds_count"))/time.Since(start).Seconds(), "gc-per-s-manager-move")
	report(moved.sum("go_memstats_heap_alloc_bytes")/(1<<20), "MiB-heap-manager-after-move")
	report((moved.allQueries()-before.allQueries())/float64(n), "db-queries-per-moved-user")
	// Who keeps the 2 cores busy while the users move, and how much
	// memory the apiserver holds for 100,000 objects.
	cpuAfter, moveSecs := cpuByCommand(b), time.Since(start).Seconds()
	if path := os.Getenv("ROLESYNC_SCALE_APISERVER_HEAP_PROFILE"); path != "" {
		// What the apiserver holds for this many users (go tool pprof).
		saveAPIServerPprof(b, "heap", "", path)
	}
	if pid := childPID(b, "kube-apiserver"); pid > 0 {
		rss, _ := procMemory(b, pid)
		report(rss, "MiB-rss-kube-apiserver")
	}
	report((cpuAfter["idle"]-cpuBefore["idle"])/moveSecs, "cores-idle-move")
	report((moved.sum("rolesync_proxyuser_login_waits_total")-before.sum("rolesync_proxyuser_login_waits_total"))/float64(n), "login-waits-per-moved-user")
	// Reconciles of the ProxyUser controller per moved user: the move's
	// own, the logins', and the drift sweep's checks meanwhile.
	report((moved.sum("controller_runtime_reconcile_total", `controller="proxyuser"`)-before.sum("controller_runtime_reconcile_total", `controller="proxyuser"`))/float64(n), "reconciles-per-moved-user")
	for _, c := range []string{"kube-apiserver", "etcd", "postgres", "manager", "harness"} {
		report((cpuAfter[c]-cpuBefore[c])/moveSecs, "cores-"+c+"-move")
		report((cpuAfter[c+"/runq"]-cpuBefore[c+"/runq"])/moveSecs, "runq-"+c+"-move")
	}
	report(percentile(limits, 50), "status-write-limit-p50")
	if pgStatements {
		logStatements(b, dbURL, n)
	}
	reportStoredObject(b, report, users[0])
	waitScaleRows(b, dbURL, n, rolesyncv1.RoleProxyAdminViewer)
	report(took.Seconds(), "s/mass-move")
	report(percentile(during, 50), "ms/login-p50-move")
	report(percentile(during, 99), "ms/login-p99-move")
	report(percentile(during, 99)/percentile(idle, 99), "x-login-p99-idle")

	// The manager's memory, before the raw loop below adds an annotation
	// to every cached object.
	rss, hwm := procMemory(b, m.Cmd.Process.Pid)
	report(hwm, "MiB-peak-rss")
	report(rss, "MiB-rss")
	report(hwm*1024*1024/float64(total), "B-peak-rss/user")
	if path := os.Getenv("ROLESYNC_SCALE_HEAP_PROFILE"); path != "" {
		saveProfile(b, "http://"+pprofAddr+"/debug/pprof/heap", path)
	}

	// The raw limit on the same apiserver and database: one write per user
	// (a metadata patch: it triggers no reconcile) and one UPDATE per row.
	// Logins meanwhile: what any writer at this concurrency does to them.
	stop = make(chan struct{})
	var duringRaw []float64
	loadDone.Add(1)
	go func() { defer loadDone.Done(); duringRaw = logins.run(b, time.Hour, stop) }()
	if path := os.Getenv("ROLESYNC_SCALE_APISERVER_PROFILE"); path != "" {
		profiling.Go(func() { time.Sleep(10 * time.Second); saveAPIServerPprof(b, "profile", "seconds=20", path+".raw") })
	}
	cpuBefore, apiBefore, rawStart := cpuByCommand(b), scrapeAPIServer(b), time.Now()
	rawObjects := rawPatches(b, users)
	close(stop)
	loadDone.Wait()
	profiling.Wait()
	// The same shares as the move's, for comparison: what one plain write
	// costs each process, with the same watchers and login load.
	cpuAfter, rawSecs := cpuByCommand(b), time.Since(rawStart).Seconds()
	report(apiServerWrites(b, apiBefore, scrapeAPIServer(b))/float64(n), "apiserver-writes-per-raw-patch")
	report((cpuAfter["idle"]-cpuBefore["idle"])/rawSecs, "cores-idle-raw")
	for _, c := range []string{"kube-apiserver", "etcd", "postgres", "manager", "harness"} {
		report((cpuAfter[c]-cpuBefore[c])/rawSecs, "cores-"+c+"-raw")
	}
	report(percentile(duringRaw, 99), "ms/login-p99-raw-loop")
	rawRows := rawUpdates(b, dbURL, users)
	limit := max(rawObjects, rawRows)
	report(rawObjects.Seconds(), "s/raw-object-patches")
	report(rawRows.Seconds(), "s/raw-updates")
	report(took.Seconds()/limit.Seconds(), "x-raw-limit")

	if m.Exited() {
		b.Fatalf("the manager exited:\n%s", tail(m.logs.String(), 4000))
	}
}

// scaleUser is one generated user: its namespace, object name, LiteLLM
// id, email and identity provider (none for users no login has seen).
type scaleUser struct{ ns, name, id, email, issuer string }

func scaleUsers(namespaces []string, n int) []scaleUser {
	out := make([]scaleUser, n)
	for i := range out {
		ns := namespaces[i%len(namespaces)]
		name := fmt.Sprintf("u%06d", i)
		out[i] = scaleUser{ns: ns, name: name, id: ns + "-" + name, email: name + "@" + ns + ".example.com"}
	}
	return out
}

// scaleIssuer is the identity provider of the login load's events.
const scaleIssuer = "https://idp.example.com"

// scaleLoginUsers are the users of the login namespace as their earlier
// logins made them (named for their issuer and id, as the login server
// names them), so that the login load measures what a company's logins
// mostly are: a returning user's login, one write of an existing object.
func scaleLoginUsers(ns string, n int) []scaleUser {
	out := scaleUsers([]string{ns}, n)
	for i := range out {
		out[i].issuer = scaleIssuer
		out[i].name = proxyuser.Name(scaleIssuer, out[i].id)
	}
	return out
}

// scaleClaims are a user's stored claims: staff plus a department and a
// project out of many, so claim sets differ as a company's do.
func scaleClaims(i int) []byte {
	raw, _ := json.Marshal(map[string]any{"groups": []string{"staff", fmt.Sprintf("dept-%02d", i%40), fmt.Sprintf("proj-%03d", (i*7)%251)}})
	return raw
}

func createStaffMapping(t testing.TB, ns string) *rolesyncv1.RoleMapping {
	t.Helper()
	staff, admins := "staff", "platform-admins"
	rm := &rolesyncv1.RoleMapping{ObjectMeta: metav1.ObjectMeta{Name: "staff", Namespace: ns}}
	rm.Spec.Claim = "groups"
	rm.Spec.Rules = []rolesyncv1.RoleRule{
		{ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: &staff}, Role: rolesyncv1.RoleInternalUser},
		{ClaimMatcher: rolesyncv1.ClaimMatcher{Equals: &admins}, Role: rolesyncv1.RoleProxyAdmin},
	}
	if err := k8s.Create(context.Background(), rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// seedScaleRows inserts LiteLLM's rows (its sign-up's) for users in one COPY.
func seedScaleRows(b *testing.B, dbURL string, users []scaleUser) {
	b.Helper()
	ctx := context.Background()
	conn := connectDB(b, dbURL)
	now := time.Now()
	rows := make([][]any, len(users))
	for i, u := range users {
		rows[i] = []any{u.id, u.id, u.email, "internal_user_viewer", now}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"LiteLLM_UserTable"}, []string{"user_id", "sso_user_id", "user_email", "user_role", "updated_at"},
		pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
}

func createScaleUsers(b *testing.B, users []scaleUser) {
	b.Helper()
	c := fastClient(b)
	var done atomic.Int64
	_, _, err := parallel.Timed(len(users), 32, func(i int) error {
		u := users[i]
		pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: u.ns, Name: u.name}}
		pu.Spec.UserID, pu.Spec.Email, pu.Spec.Issuer = u.id, u.email, u.issuer
		pu.Spec.Claims = &apiextensionsv1.JSON{Raw: scaleClaims(i)}
		if d := done.Add(1); d%20000 == 0 {
			b.Logf("created %d of %d users", d, len(users))
		}
		return c.Create(context.Background(), pu)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// fastClient is a client without client-side throttling, for the harness's
// own writes and the raw limit.
func fastClient(b *testing.B) client.Client {
	b.Helper()
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = -1, -1
	cl, err := client.New(c, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// waitScaleSettled waits until the database holds role for n rows and then
// every user's status has settled on it (listing only once the cheap count
// says the rows are done).
func waitScaleSettled(b *testing.B, dbURL string, n int, role rolesyncv1.Role) {
	b.Helper()
	waitScaleRows(b, dbURL, n, role)
	deadline := time.Now().Add(30 * time.Minute)
	for ; time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var list rolesyncv1.ProxyUserList
		if err := k8s.List(context.Background(), &list); err != nil {
			b.Fatal(err)
		}
		done := 0
		for i := range list.Items {
			if scaleSettled(&list.Items[i], role) {
				done++
			}
		}
		if done >= n {
			return
		}
	}
	b.Fatalf("users did not settle on %s", role)
}

func waitScaleRows(b *testing.B, dbURL string, n int, role rolesyncv1.Role) {
	b.Helper()
	ctx := context.Background()
	conn := connectDB(b, dbURL)
	deadline := time.Now().Add(60 * time.Minute)
	for ; time.Now().Before(deadline); time.Sleep(time.Second) {
		var rows int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM "LiteLLM_UserTable" WHERE user_role = $1`, string(role)).Scan(&rows); err != nil {
			b.Fatal(err)
		}
		if rows >= n {
			return
		}
	}
	b.Fatalf("rows did not reach %s", role)
}

func scaleSettled(pu *rolesyncv1.ProxyUser, role rolesyncv1.Role) bool {
	return pu.Status.Role == role && pu.Status.SyncedRole == role && pu.Status.ObservedGeneration == pu.Generation &&
		apimeta.IsStatusConditionTrue(pu.Status.Conditions, rolesyncv1.ConditionSynced)
}

func resourceVersions(b *testing.B) map[string]string {
	b.Helper()
	var list rolesyncv1.ProxyUserList
	if err := k8s.List(context.Background(), &list); err != nil {
		b.Fatal(err)
	}
	out := make(map[string]string, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Namespace+"/"+list.Items[i].Name] = list.Items[i].ResourceVersion
	}
	return out
}

// changedObjects counts the ProxyUsers written since versions was taken.
func changedObjects(b *testing.B, versions map[string]string) int {
	b.Helper()
	changed := 0
	for k, rv := range resourceVersions(b) {
		if versions[k] != rv {
			changed++
		}
	}
	return changed
}

func currentRV(b *testing.B) string {
	b.Helper()
	var list rolesyncv1.ProxyUserList
	if err := k8s.List(context.Background(), &list, client.Limit(1)); err != nil {
		b.Fatal(err)
	}
	return list.ResourceVersion
}

// metricsScrape is one read of the manager's /metrics.
type metricsScrape map[string]float64 // series (name{labels}) -> value

func scrape(b *testing.B, addr string) metricsScrape {
	b.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	return parseMetrics(res.Body)
}

// scrapeAPIServer reads the kube-apiserver's own /metrics.
func scrapeAPIServer(b *testing.B) metricsScrape {
	b.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	res, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		b.Fatalf("apiserver /metrics: %s", res.Status)
	}
	return parseMetrics(res.Body)
}

// apiServerWrites counts the write requests (every verb but GET, LIST and
// WATCH) the apiserver served between two scrapes, and logs every request
// but watches by verb, resource and subresource: what a phase cost it
// beyond the writes it was meant to make.
func apiServerWrites(b *testing.B, before, after metricsScrape) float64 {
	b.Helper()
	label := func(series, name string) string {
		i := strings.Index(series, name+`="`)
		if i < 0 {
			return ""
		}
		rest := series[i+len(name)+2:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	by := map[string]float64{}
	total := 0.0
	for series, v := range after {
		if !strings.HasPrefix(series, "apiserver_request_total{") {
			continue
		}
		verb := label(series, "verb")
		d := v - before[series]
		if verb == "WATCH" || d <= 0 {
			continue
		}
		by[verb+" "+label(series, "resource")+"/"+label(series, "subresource")] += d
		if verb != "GET" && verb != "LIST" {
			total += d
		}
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "\n  %s: %.0f", k, by[k])
	}
	b.Logf("apiserver requests during the phase (%.0f writes):%s", total, sb.String())
	return total
}

// reportAPIServerShares reports, between two scrapes of the apiserver,
// the mean time it took to serve the logins' ProxyUser writes (APPLY) and
// the controller's status writes (PATCH status), and the mean time of its
// ProxyUser writes to etcd: with the login server's own write time, where
// a login's time goes (client side, apiserver, etcd).
func reportAPIServerShares(report func(float64, string), before, after metricsScrape, phase string) {
	mean := func(name string, parts ...string) float64 {
		n := after.sum(name+"_count", parts...) - before.sum(name+"_count", parts...)
		if n == 0 {
			return 0
		}
		return (after.sum(name+"_sum", parts...) - before.sum(name+"_sum", parts...)) / n * 1000
	}
	report(mean("apiserver_request_duration_seconds", `verb="APPLY"`, `resource="proxyusers"`), "ms/apiserver-apply-mean-"+phase)
	report(mean("apiserver_request_duration_seconds", `verb="PATCH"`, `resource="proxyusers"`, `subresource="status"`), "ms/apiserver-status-patch-mean-"+phase)
	report(mean("etcd_request_duration_seconds", `operation="update"`, `proxyusers`), "ms/etcd-update-mean-"+phase)
}

func parseMetrics(r io.Reader) metricsScrape {
	out := metricsScrape{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// sum adds the series of metric name whose labels contain every part.
func (s metricsScrape) sum(name string, parts ...string) float64 {
	total := 0.0
	for series, v := range s {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(series, p)
		}
		if ok {
			total += v
		}
	}
	return total
}

// reportLoginShares reports where a login's time went between two
// scrapes: the mean time the login server took to answer and the mean
// time of its ProxyUser write at the apiserver (the rest of the client's
// latency is HTTP and scheduling in the harness).
func reportLoginShares(report func(float64, string), before, after metricsScrape, phase string) {
	mean := func(name string) float64 {
		n := after.sum(name+"_count") - before.sum(name+"_count")
		if n == 0 {
			return 0
		}
		return (after.sum(name+"_sum") - before.sum(name+"_sum")) / n * 1000
	}
	report(mean("rolesync_login_event_duration_seconds"), "ms/login-server-mean-"+phase)
	report(mean("rolesync_login_write_duration_seconds"), "ms/login-write-mean-"+phase)
}

func (s metricsScrape) queries(operation string) float64 {
	return s.sum("rolesync_database_query_duration_seconds_count", `operation="`+operation+`"`)
}

func (s metricsScrape) allQueries() float64 {
	return s.sum("rolesync_database_query_duration_seconds_count")
}

// waitFirstPass waits until the ProxyUser controller has reconciled n
// users since start and its queue is empty.
func waitFirstPass(b *testing.B, m *manager, addr string, n int) {
	b.Helper()
	waitFor(b, 30*time.Minute, m.logs, func() error {
		s := scrape(b, addr)
		done := s.sum("controller_runtime_reconcile_total", `controller="proxyuser"`)
		depth := s.sum("workqueue_depth", `name="proxyuser"`)
		if done < float64(n) || depth > 0 {
			return fmt.Errorf("%.0f of %d reconciled, queue depth %.0f", done, n, depth)
		}
		return nil
	})
}

// watchAllUsers watches every ProxyUser from resourceVersion on client-go's
// RetryWatcher (a watch the apiserver closes is re-opened).
func watchAllUsers(b *testing.B, resourceVersion string) watch.Interface {
	b.Helper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := toolswatch.NewRetryWatcherWithContext(ctx, resourceVersion, allUsersWatcher{wc})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Stop(); cancel() })
	return w
}

type allUsersWatcher struct{ wc client.WithWatch }

func (a allUsersWatcher) WatchWithContext(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	o.AllowWatchBookmarks = true
	return a.wc.Watch(ctx, &rolesyncv1.ProxyUserList{}, &client.ListOptions{Raw: &o})
}

// waitMoved reads w until n users (outside the login namespace: they do
// not hold the role) have settled on role; it returns when the last did.
func waitMoved(b *testing.B, w watch.Interface, n int, role rolesyncv1.Role) time.Time {
	b.Helper()
	done := make(map[string]bool, n)
	timeout := time.After(60 * time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatalf("watch closed with %d of %d users moved", len(done), n)
			}
			pu, isUser := ev.Object.(*rolesyncv1.ProxyUser)
			if ev.Type == watch.Bookmark || !isUser {
				continue
			}
			key := pu.Namespace + "/" + pu.Name
			if scaleSettled(pu, role) {
				done[key] = true
			} else {
				delete(done, key)
			}
			if len(done) >= n {
				return time.Now()
			}
		case <-timeout:
			b.Fatalf("%d of %d users moved", len(done), n)
		}
	}
}

// loginLoad sends signed login events for the login namespace's users at a
// steady rate, one at a time per sender, and records each answer's latency.
type loginLoad struct {
	addr   string
	ns     string
	secret []byte
	users  int
	next   atomic.Int64
}

const loginRate = 20 // logins per second

func (l *loginLoad) run(b *testing.B, d time.Duration, stop <-chan struct{}) []float64 {
	var mu sync.Mutex
	var lat []float64
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / loginRate)
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-end:
			wg.Wait()
			return lat
		case <-stop:
			wg.Wait()
			return lat
		case <-tick.C:
			wg.Add(1)
			go func() {
				defer wg.Done()
				ms, err := l.one()
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, ms)
				mu.Unlock()
			}()
		}
	}
}

func (l *loginLoad) one() (float64, error) {
	i := int(l.next.Add(1)) % l.users
	name := fmt.Sprintf("u%06d", i)
	var claims map[string]any
	_ = json.Unmarshal(scaleClaims(i), &claims)
	now := time.Now()
	body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("scale-%d-%d", i, now.UnixNano()), "time": now.UTC().Format(time.RFC3339Nano),
		"userID": l.ns + "-" + name, "email": name + "@" + l.ns + ".example.com", "namespace": l.ns, "issuer": scaleIssuer, "claims": claims})
	req, _ := http.NewRequest(http.MethodPost, "http://"+l.addr+"/v1/namespaces/"+l.ns+"/login-events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(authn.SignatureHeader, authn.Sign(l.secret, body, now))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	data, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	ms := float64(time.Since(now).Microseconds()) / 1000
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("login %s: %d %s", name, res.StatusCode, data)
	}
	return ms, nil
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

// reportStoredObject reports the size of a moved user as the apiserver
// stores and serves it (JSON, managed fields included) and the share of
// its managed fields: what every write of it costs the apiserver to decode,
// convert, validate and encode, and what its watch cache holds per event.
func reportStoredObject(b *testing.B, report func(float64, string), u scaleUser) {
	b.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(rolesyncv1.GroupVersion.WithKind("ProxyUser"))
	if err := fastClient(b).Get(context.Background(), client.ObjectKey{Namespace: u.ns, Name: u.name}, obj); err != nil {
		b.Fatal(err)
	}
	all, err := json.Marshal(obj.Object)
	if err != nil {
		b.Fatal(err)
	}
	managed, err := json.Marshal(obj.GetManagedFields())
	if err != nil {
		b.Fatal(err)
	}
	report(float64(len(all)), "B-stored-proxyuser")
	report(float64(len(managed)), "B-stored-managed-fields")
	b.Logf("a moved user as stored: %s", all)
}

// resetStatements starts PostgreSQL's per-statement counts afresh
// (pg_stat_statements, loaded with
// ROLESYNC_PGTEST_SETTINGS=shared_preload_libraries=pg_stat_statements).
func resetStatements(b *testing.B, dbURL string) {
	b.Helper()
	c := connectDB(b, dbURL)
	defer func() { _ = c.Close(context.Background()) }()
	for _, q := range []string{`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`, `SELECT pg_stat_statements_reset()`} {
		if _, err := c.Exec(context.Background(), q); err != nil {
			b.Fatalf("ROLESYNC_SCALE_PG_STATEMENTS needs %s=shared_preload_libraries=pg_stat_statements: %s: %v", pgtest.EnvSettings, q, err)
		}
	}
}

// logStatements logs the statements PostgreSQL spent its time on since
// resetStatements, the most expensive first, per moved user.
func logStatements(b *testing.B, dbURL string, n int) {
	b.Helper()
	c := connectDB(b, dbURL)
	defer func() { _ = c.Close(context.Background()) }()
	rows, err := c.Query(context.Background(), `SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 140)
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT 12`)
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for rows.Next() {
		var calls, nrows int64
		var ms float64
		var query string
		if err := rows.Scan(&calls, &ms, &nrows, &query); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&sb, "\n  %8d calls %9.1f ms (%.3f ms/moved user, %.3f ms/call) %8d rows  %s", calls, ms, ms/float64(n), ms/float64(max(calls, 1)), nrows, query)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	b.Logf("PostgreSQL statements during the move (pg_stat_statements):%s", sb.String())
}

// rawPatches writes one annotation on every user with a plain client at the
// manager's concurrency: the apiserver's write limit for these objects.
func rawPatches(b *testing.B, users []scaleUser) time.Duration {
	b.Helper()
	c := fastClient(b)
	_, took, err := parallel.Timed(len(users), scaleConcurrency, func(i int) error {
		pu := &rolesyncv1.ProxyUser{ObjectMeta: metav1.ObjectMeta{Namespace: users[i].ns, Name: users[i].name}}
		patch := []byte(`{"metadata":{"annotations":{"bench.rolesync.dev/raw":"` + time.Now().Format(time.RFC3339Nano) + `"}}}`)
		return c.Patch(context.Background(), pu, client.RawPatch("application/merge-patch+json", patch))
	})
	if err != nil {
		b.Fatal(err)
	}
	return took
}

// rawUpdates sets each user's row role (to what it holds) with a plain pgx
// loop at the manager's concurrency.
func rawUpdates(b *testing.B, dbURL string, users []scaleUser) time.Duration {
	b.Helper()
	ctx := context.Background()
	conns := make(chan *pgx.Conn, scaleConcurrency)
	for range scaleConcurrency {
		conns <- connectDB(b, dbURL)
	}
	_, took, err := parallel.Timed(len(users), scaleConcurrency, func(i int) error {
		c := <-conns
		defer func() { conns <- c }()
		_, err := c.Exec(ctx, `UPDATE "LiteLLM_UserTable" SET user_role = $2, updated_at = now() WHERE user_id = $1`, users[i].id, string(rolesyncv1.RoleProxyAdminViewer))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return took
}

func saveProfile(b *testing.B, url, path string) {
	b.Helper()
	if err := fetchTo(http.DefaultClient, url, path); err != nil {
		b.Fatal(err)
	}
}

// fetchTo saves what a GET of url answers to path.
func fetchTo(hc *http.Client, url, path string) error {
	res, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	data, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s: %s", url, res.Status, data)
	}
	if err == nil {
		err = os.WriteFile(path, data, 0o600)
	}
	return err
}

// saveAPIServerPprof saves the apiserver's /debug/pprof/NAME?query to
// path (errors are reported, not fatal: it may run on a goroutine).
func saveAPIServerPprof(b *testing.B, name, query, path string) {
	hc, err := rest.HTTPClientFor(cfg)
	if err == nil {
		var u *url.URL
		if u, err = url.Parse(cfg.Host); err == nil {
			u.Path, u.RawQuery = "/debug/pprof/"+name, query
			err = fetchTo(hc, u.String(), path)
		}
	}
	if err != nil {
		b.Error(err)
	}
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}
