package rpc

import (
	"net"
	"sync"
	"time"
)

// frameWriter coalesces the frames of concurrent callers into few
// writes: a caller that finds no write in progress writes everything
// queued, including what others queue meanwhile; the others return at
// once. With 16 callers on one TCP connection that is one system call
// for many frames. A failed write fails the connection, and the reader
// then fails every call waiting on it, so no frame is lost silently.
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration // per write: a peer that does not read loses the connection

	mu      sync.Mutex
	queued  []byte
	spare   []byte
	writing bool
	err     error
}

// write queues m's frame and, unless another caller is writing, writes
// the queue out. It returns the connection's write error, if any.
func (w *frameWriter) write(m *message) error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	w.queued = appendFrame(w.queued, m)
	if w.writing {
		w.mu.Unlock()
		return nil
	}
	w.writing = true
	for len(w.queued) > 0 && w.err == nil {
		b := w.queued
		w.queued = w.spare[:0]
		w.mu.Unlock()
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		_, err := w.conn.Write(b)
		w.mu.Lock()
		w.spare = b[:0]
		if err != nil {
			w.err = err
			w.conn.Close()
		}
	}
	w.writing = false
	err := w.err
	w.mu.Unlock()
	return err
}
