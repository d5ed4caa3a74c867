//go:build unix

package httpapp

import (
	"errors"
	"net"
	"syscall"
)

// socketQuiet reports whether nothing is waiting to be read on c, neither a byte nor the end of the stream,
// without reading anything or blocking: a peek that would block means quiet.
func socketQuiet(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, perr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet = errors.Is(perr, syscall.EAGAIN)
		return true // never wait for the socket to become readable
	})
	return err == nil && quiet
}
