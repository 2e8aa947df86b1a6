package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitFollowsTheContainer(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2 := write("memory.max", "536870912\n")
	if got := setMemoryLimit([]string{v2}); got != 483183820-48<<20 || debug.SetMemoryLimit(-1) != got {
		t.Fatalf("a 512 MiB container: soft limit %d (runtime %d), want 90%% less 48 MiB of code", got, debug.SetMemoryLimit(-1))
	}
	if got := softLimit(64 << 20); got != 32<<20 {
		t.Fatalf("a 64 MiB container: soft limit %d, want half of it", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	for _, v := range []string{"max\n", "9223372036854771712\n", "garbage"} {
		if got := setMemoryLimit([]string{write("limit", v)}); got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
			t.Fatalf("%q: set %d", v, got)
		}
	}
	if got := setMemoryLimit([]string{filepath.Join(dir, "missing"), v2}); got == 0 {
		t.Fatal("the v1 file was not read after a missing v2 file")
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := setMemoryLimit([]string{v2}); got != 0 {
		t.Fatalf("GOMEMLIMIT set, yet the limit was changed to %d", got)
	}
}
