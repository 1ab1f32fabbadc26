package testtool

import "syscall"

// SysProcAttr has the kernel kill the server if the test binary dies
// without running its cleanups (a panic or a -timeout).
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
