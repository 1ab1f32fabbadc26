package testtool

import "syscall"

// SysProcAttr has the kernel kill the server if the test binary dies
// without running its cleanups (a panic or a -timeout).
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// SysProcAttrAs is SysProcAttr for a child that runs as uid and gid, with
// no supplementary groups; only root may ask for it. Go's fork sets the
// death signal after switching user, so the switch does not clear it.
func SysProcAttrAs(uid, gid uint32) *syscall.SysProcAttr {
	a := SysProcAttr()
	a.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	return a
}
