package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles are where a container's memory limit is read: cgroup
// v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryLimitShare is the part of the container's limit the Go runtime
// may use before the garbage collector works harder: the rest is headroom.
const memoryLimitShare = 0.9

// codeReserve is what the container's limit counts and Go's soft limit
// does not: the manager binary's code and data pages in memory (49 MiB of
// RSS measured at 100,000 users: /proc/PID/smaps, the binary's mapping).
const codeReserve = 48 << 20

// softLimit is Go's soft memory limit in a container with limit bytes:
// 90% of it less the binary's pages, and never below half of it.
func softLimit(limit int64) int64 {
	return max(int64(float64(limit)*memoryLimitShare)-codeReserve, limit/2)
}

// noLimit is above any real limit (cgroup v1 reports "unlimited" as a
// huge number).
const noLimit = int64(1) << 60

// setMemoryLimit sets Go's soft memory limit to softLimit of the
// container's memory limit, unless GOMEMLIMIT says otherwise or there is no
// limit: the
// collector then runs before the heap's growth (a mass move, a resync)
// takes the process past its limit and the kubelet kills it. It returns
// the limit set (0: none).
func setMemoryLimit(files []string) int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(data))
		limit, err := strconv.ParseInt(v, 10, 64)
		if err != nil || limit <= 0 || limit >= noLimit { // "max", or unlimited
			return 0
		}
		soft := softLimit(limit)
		debug.SetMemoryLimit(soft)
		return soft
	}
	return 0
}
