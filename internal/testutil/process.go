package testutil

import (
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// Process is a server a test runs (Redis, clamd) and breaks on purpose:
// killed as a crash would, paused as a frozen host would, and started
// again. Its output is kept for the failure message. Safe for
// concurrent use.
type Process struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	out LockedBuffer
}

// LockedBuffer is a buffer safe for concurrent writers and readers: a
// process's output, a logger's.
type LockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what has been written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs cmd as the process, its output kept.
func (p *Process) Start(cmd *exec.Cmd) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	return nil
}

// Kill stops the process at once, as a crash would; it returns once the
// process is gone.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// Pause stops the process without closing its sockets (SIGSTOP): what
// is sent to it gets no answer at all.
func (p *Process) Pause() { p.signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (p *Process) Resume() { p.signal(syscall.SIGCONT) }

func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Output is what the process has printed so far.
func (p *Process) Output() string { return p.out.String() }
