package testenv

import "syscall"

// childProcAttr makes the kernel kill a service when the test process dies
// without cleaning up (a panic or a -timeout), so no server is left behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// groupProcAttr is childProcAttr in a process group of its own, so that
// killGroup stops a program together with the children it spawned.
func groupProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills the process group led by pid (started with
// groupProcAttr); a group that is gone already is fine.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
