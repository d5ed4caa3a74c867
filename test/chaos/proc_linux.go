package chaos

import "syscall"

// childAttr makes the kernel kill a child when the harness dies, so a crashed or interrupted run leaves no
// sidecar or redis-server behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
