//go:build freebsd

package jail

import "os/exec"

const isFreeBSD = true

func jailOf(cmd *exec.Cmd) int { return cmd.SysProcAttr.Jail }
