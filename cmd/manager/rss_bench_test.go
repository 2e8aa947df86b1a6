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

// proc is one process as /proc/PID/stat gives it.
type proc struct {
	ppid int
	comm string
	secs float64 // CPU: user and system, with reaped children
}

// procs reads every process's /proc/PID/stat.
func procs(b *testing.B) map[int]proc {
	b.Helper()
	out := map[int]proc{}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17)
		s := string(data)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ticks := 0.0
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
		out[pid] = proc{ppid: ppid, comm: s[open+1 : end], secs: ticks / 100} // USER_HZ is 100 on Linux
	}
	return out
}

// cpuByCommand returns the CPU seconds of this process and every process
// it started, summed by command name: kube-apiserver, etcd, postgres,
// manager, and this test binary as "harness"; and under "NAME/runq" the
// seconds their threads waited for a CPU. Two readings, divided by the
// seconds between them, say which part of the control plane a run keeps
// busy, and how short of CPU the machine ran.
func cpuByCommand(b *testing.B) map[string]float64 {
	b.Helper()
	all := procs(b)
	self := os.Getpid()
	mine := func(pid int) bool {
		for range 16 {
			if pid == self {
				return true
			}
			p, ok := all[pid]
			if !ok || pid <= 1 {
				return false
			}
			pid = p.ppid
		}
		return false
	}
	out := map[string]float64{}
	for pid, p := range all {
		switch {
		case pid == self:
			out["harness"] += p.secs
			out["harness/runq"] += runQueueWait(pid)
		case mine(p.ppid):
			out[p.comm] += p.secs
			out[p.comm+"/runq"] += runQueueWait(pid)
		}
	}
	out["idle"] = idleSeconds()
	return out
}

// idleSeconds is the CPU time the whole machine spent idle (or waiting
// for I/O), summed over its CPUs, from /proc/stat: whether a phase left
// CPU unused.
func idleSeconds() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	idle, _ := strconv.ParseFloat(f[4], 64)
	iowait, _ := strconv.ParseFloat(f[5], 64)
	return (idle + iowait) / 100 // USER_HZ
}

// runQueueWait is the seconds the threads of process pid have spent
// runnable but waiting for a CPU (the second field of each thread's
// /proc/PID/task/TID/schedstat): how long a busy machine made it wait.
// Threads that exited are not counted.
func runQueueWait(pid int) float64 {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	total := 0.0
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); len(f) >= 2 {
			ns, _ := strconv.ParseFloat(f[1], 64)
			total += ns / 1e9
		}
	}
	return total
}

// childPID is the pid of a process this one started whose command is
// comm (0 if none).
func childPID(b *testing.B, comm string) int {
	b.Helper()
	self := os.Getpid()
	for pid, p := range procs(b) {
		if p.ppid == self && p.comm == comm {
			return pid
		}
	}
	return 0
}
