// Command demo runs rolesync end to end on this machine (`make demo`): a
// real control plane and PostgreSQL, the manager with its login server,
// sample RoleMappings and signed logins. Ctrl-C stops everything and
// removes what it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rolesync/rolesync/internal/demo"
)

func main() {
	assets := flag.String("assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory with kube-apiserver, etcd and kubectl (hack/build-control-plane.sh prints it)")
	manager := flag.String("manager", "bin/manager", "the manager binary")
	flag.Parse()
	if *assets == "" {
		fmt.Fprintln(os.Stderr, "demo: --assets (or KUBEBUILDER_ASSETS) is required; run `make demo`")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "rolesync-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err = demo.Run(ctx, demo.Options{Out: os.Stdout, Assets: *assets, ManagerBin: *manager, RepoRoot: ".", Dir: dir, Wait: true})
	stop()
	_ = os.RemoveAll(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	fmt.Println(">> stopped; removed", dir)
}
