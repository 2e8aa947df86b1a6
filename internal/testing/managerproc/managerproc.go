// Package managerproc runs the manager binary as a process and waits until
// it is ready, for the cmd/manager tests and `make demo`.
package managerproc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/rolesync/rolesync/internal/testing/freeport"
)

// Process is one run of the manager binary.
type Process struct {
	Cmd *exec.Cmd
	// Probe is the address of its /healthz and /readyz endpoints.
	Probe  string
	exited chan struct{} // closed once the process has been reaped
}

// Start runs bin with args (plus --health-probe-bind-address on a free
// port) and the environment plus env, its output to out, and waits until
// /readyz answers 200. A manager that does not get ready within timeout is
// killed and an error returned.
func Start(ctx context.Context, bin string, args, env []string, out io.Writer, timeout time.Duration) (*Process, error) {
	probe, err := freeport.Addr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append(append([]string(nil), args...), "--health-probe-bind-address", probe)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p := &Process{Cmd: cmd, Probe: probe, exited: exited}
	deadline := time.Now().Add(timeout)
	for {
		if err := ready(ctx, probe); err == nil {
			return p, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			p.Kill()
			return nil, fmt.Errorf("the manager did not become ready within %s: %w", timeout, err)
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("the manager exited before it became ready: %v", cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ready(ctx context.Context, probe string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+probe+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz %d", resp.StatusCode)
	}
	return nil
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Kill stops the manager abruptly (SIGKILL): no graceful shutdown.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.Cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// Stop asks the manager to shut down (SIGINT) and kills it after grace.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.Kill()
	}
}
