package sipptest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is a child process started in its own process group, so that it and
// everything it forks (Kamailio workers) can be signalled and stopped at once.
type Proc struct {
	// Name labels the process in errors.
	Name string
	// Cmd is the underlying command; Cmd.Process is set once started.
	Cmd *exec.Cmd
	// LogPath is the file receiving its stdout and stderr ("" for none).
	LogPath string

	done    chan struct{}
	waitErr error
	once    sync.Once
}

// StartProc starts argv in dir with stdout/stderr appended to logPath
// (discarded when logPath is ""), in a new process group that is killed if
// this process dies.
func StartProc(name, dir, logPath string, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("sipptest: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var logf *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		logf = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		if logf != nil {
			logf.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id (also the process group id).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit or ctx to end and returns its exit error.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ExitCode returns the exit code once exited, or -1.
func (p *Proc) ExitCode() int {
	if !p.Exited() || p.Cmd.ProcessState == nil {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Signal sends sig to the whole process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Pid(), sig)
}

// Stop sends sig to the process group, waits up to grace for the leader to
// exit, then SIGKILLs the group. Always safe to call more than once.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	p.once.Do(func() {
		if !p.Exited() {
			_ = p.Signal(sig)
			t := time.NewTimer(grace)
			select {
			case <-p.done:
			case <-t.C:
			}
			t.Stop()
		}
		// Kill stragglers of the group (forked workers) even if the
		// leader exited by itself.
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	})
}
