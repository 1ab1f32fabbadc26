//go:build !linux

package pebbletest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
