//go:build unix && !linux

package e2e

import "syscall"

func serverSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// Without /proc there is no cheap way to find leaked processes; the process
// group kill in proc.terminate is all we do.
func procsReferencing(dir string) []int { return nil }

func procDescription(pid int) string { return "" }
