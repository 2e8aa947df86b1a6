package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
)

// BenchmarkManagerRSS runs the manager binary with 10,000 ProxyUsers synced
// to a real PostgreSQL and reports its resident memory (VmRSS) and peak
// (VmHWM) from /proc. Goal: at most 200 MiB.
//
//	go test ./cmd/manager -run '^$' -bench ManagerRSS -benchtime 1x
func BenchmarkManagerRSS(b *testing.B) {
	const n = 10000
	dbURL, db := newDatabase(b)
	ns := newNamespace(b)
	createKeycloakMapping(b, ns)
	m := startManager(b, cfg.Host, []string{"DATABASE_URL=" + dbURL}, "--max-concurrent-reconciles", "16")
	createUsers(b, ns, dbURL, n)
	waitConverged(b, context.Background(), m, db, ns, n, rolesyncv1.RoleInternalUser)
	rss, hwm := procMemory(b, m.Cmd.Process.Pid)
	b.ReportMetric(rss, "MiB-rss")
	b.ReportMetric(hwm, "MiB-peak-rss")
}

// procMemory reads VmRSS and VmHWM of pid, in MiB.
func procMemory(b *testing.B, pid int) (rss, hwm float64) {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}
