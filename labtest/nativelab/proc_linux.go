package nativelab

import "syscall"

// sysProcAttr puts each program in its own process group, so that a Ctrl-C in the terminal reaches only the
// lab (which then stops the programs in order), and has the kernel kill it if the lab process dies without
// stopping it (a crashed or killed test binary leaves nothing behind).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
