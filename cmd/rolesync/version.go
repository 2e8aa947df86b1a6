package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time: go build -ldflags "-X main.version=v0.1.0 -X main.commit=<sha>".
// Without them the version and commit come from the Go build information
// (the module version, and the VCS revision Go records when it builds from
// a checkout).
var (
	version = ""
	commit  = ""
)

// buildInfo is what `rolesync version` prints.
type buildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && commit == "" && b.Commit != "" {
			b.Commit += "-dirty"
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

const versionUsage = `usage: rolesync version [-o text|json]

Prints the version and the commit the binary was built from.`

func versionCmd(args []string, stdout, stderr io.Writer) int {
	cmd := newCommand("version", versionUsage, stderr)
	output := cmd.fs.String("o", "text", "output: text or json")
	if code, ok := cmd.parse(args); !ok {
		return code
	}
	if cmd.fs.NArg() > 0 {
		return cmd.fail("unexpected argument %q", cmd.fs.Arg(0))
	}
	b := currentBuild()
	switch *output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(b); err != nil {
			return exitFailure
		}
	case "text":
		fmt.Fprintf(stdout, "rolesync %s (commit %s, %s)\n", b.Version, b.Commit, b.Go)
	default:
		return cmd.fail("-o must be text or json, not %q", *output)
	}
	return exitOK
}
