package testenv

import "syscall"

// childProcAttr makes the kernel kill a service when the test process dies
// without cleaning up (a panic or a -timeout), so no server is left behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
