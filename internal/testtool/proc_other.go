//go:build !linux

package testtool

import "syscall"

// SysProcAttr is nil where the kernel cannot tie a child's life to ours;
// t.Cleanup still stops it.
func SysProcAttr() *syscall.SysProcAttr { return nil }
