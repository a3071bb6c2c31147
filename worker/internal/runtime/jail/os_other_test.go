//go:build !freebsd

package jail

import "os/exec"

const isFreeBSD = false

func jailOf(*exec.Cmd) int { return 0 }
