//go:build linux && amd64 && !race

package exchange

import "syscall"

// plainStores: the writer marks itself with plain stores, which amd64
// (total store order) makes release stores, and closers fence for it
// with membarrier (writerGate).
const plainStores = true

func (g *writerGate) setActive(v uint32) { g.active = v }

// membarrier(2) on linux/amd64.
const (
	sysMembarrier                         = 324
	membarrierCmdQuery                    = 0
	membarrierCmdPrivateExpedited         = 1 << 3
	membarrierCmdRegisterPrivateExpedited = 1 << 4
)

// fastPathAvailable registers the process for private expedited
// membarrier, once per Environment (registering again is harmless).
// False if the kernel lacks it or a sandbox forbids it: the gate then
// stays shut.
func fastPathAvailable() bool {
	r, _, errno := syscall.Syscall(sysMembarrier, membarrierCmdQuery, 0, 0)
	if errno != 0 || r&membarrierCmdPrivateExpedited == 0 {
		return false
	}
	_, _, errno = syscall.Syscall(sysMembarrier, membarrierCmdRegisterPrivateExpedited, 0, 0)
	return errno == 0
}

// asymmetricFence runs a full memory barrier on every CPU running a
// thread of this process. Once registered, the command has no failure
// left to report (membarrier(2) fails only for commands not supported or
// not registered), so its result is not checked.
func asymmetricFence() {
	syscall.Syscall(sysMembarrier, membarrierCmdPrivateExpedited, 0, 0)
}
