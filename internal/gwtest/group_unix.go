//go:build unix

package gwtest

import (
	"os/exec"
	"syscall"
)

// InGroup makes cmd, once started, lead a process group of its own, so that
// KillGroup ends what it started too (a shell's or node's children).
func InGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// KillGroup kills the process group of a command started with InGroup.
func KillGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
