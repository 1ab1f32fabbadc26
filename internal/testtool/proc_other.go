//go:build !linux

package testtool

import "syscall"

// SysProcAttr is nil where the kernel cannot tie a child's life to ours;
// t.Cleanup still stops it.
func SysProcAttr() *syscall.SysProcAttr { return nil }

// SysProcAttrAs is nil here: a child cannot be started as another user
// with its life tied to ours.
func SysProcAttrAs(uid, gid uint32) *syscall.SysProcAttr { return nil }
