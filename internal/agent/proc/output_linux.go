package proc

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// outPipe copies what the tree writes to one pipe into a writer. Only its
// copy goroutine reads the pipe; flush interrupts that goroutine's blocking
// read with a read deadline and waits until it has drained, without
// blocking, everything in the pipe at that moment.
type outPipe struct {
	r    *os.File
	w    io.Writer
	done chan struct{} // closed when copy returns

	mu      sync.Mutex
	waiters []chan struct{} // flushes waiting for the next drain
}

func newOutPipe(r *os.File, w io.Writer) *outPipe {
	return &outPipe{r: r, w: w, done: make(chan struct{})}
}

// copy runs until the pipe is closed by every writer (EOF) or by close.
func (o *outPipe) copy() {
	defer close(o.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := o.r.Read(buf)
		if n > 0 {
			o.write(buf[:n])
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			o.mu.Lock()
			waiters := o.waiters
			o.waiters = nil
			o.r.SetReadDeadline(time.Time{})
			o.mu.Unlock()
			eof := o.drain(buf)
			for _, c := range waiters {
				close(c)
			}
			if eof {
				return
			}
		default:
			return // EOF, or closed by close
		}
	}
}

// write writes to the destination; a failing writer does not stop the
// copying, so that the tree never blocks on a full pipe.
func (o *outPipe) write(b []byte) {
	o.w.Write(b)
}

// drain reads what is in the pipe now, without waiting for more, and
// reports whether it reached EOF.
func (o *outPipe) drain(buf []byte) (eof bool) {
	rc, err := o.r.SyscallConn()
	if err != nil {
		return false
	}
	rc.Control(func(fd uintptr) {
		for {
			n, err := syscall.Read(int(fd), buf) // the fd is non-blocking
			switch {
			case n > 0:
				o.write(buf[:n])
			case err == syscall.EINTR:
			case n == 0 && err == nil:
				eof = true
				return
			default:
				return // EAGAIN: drained
			}
		}
	})
	return eof
}

// flush returns once everything written to the pipe before it was called
// has been written to the destination.
func (o *outPipe) flush() {
	c := make(chan struct{})
	o.mu.Lock()
	o.waiters = append(o.waiters, c)
	o.r.SetReadDeadline(time.Now()) // wakes the reader
	o.mu.Unlock()
	select {
	case <-c:
	case <-o.done:
	}
}

// close waits up to timeout for EOF, then closes the pipe and waits for the
// copy goroutine to end; nothing is written to the destination after it.
func (o *outPipe) close(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-o.done:
	case <-t.C:
	}
	o.r.Close()
	<-o.done
}
