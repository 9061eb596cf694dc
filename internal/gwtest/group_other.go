//go:build !unix

package gwtest

import "os/exec"

// InGroup does nothing here: there are no process groups to lead.
func InGroup(*exec.Cmd) {}

// KillGroup kills the command's process alone.
func KillGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
