package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// keepAliveResult is the outcome of holding many idle keep-alive
// connections open on a gateway.
type keepAliveResult struct {
	conns        int   // connections opened and held
	requests     int64 // requests answered 200 (one at open, one in the trickle, per connection)
	errors       int64
	firstErr     string
	rssBefore    int64 // gateway RSS before opening them
	rssOpen      int64 // after every connection has served one request
	rssAfter     int64 // after the trickle
	trickleRate  float64
	trickleTotal time.Duration
	// memBefore and memAfter are the gateway's Go memory before opening
	// the connections and while they are all held (after the trickle).
	memBefore, memAfter goMem
}

// goMem is what a gateway's /metrics says of its Go memory.
type goMem struct {
	heap, stack, goroutines float64
}

// perConn is the RSS growth per held connection, in bytes.
func (r keepAliveResult) perConn() float64 {
	if r.conns == 0 {
		return 0
	}
	return float64(max(r.rssOpen, r.rssAfter)-r.rssBefore) / float64(r.conns)
}

// keepAlive opens n keep-alive connections to addr, sends one request on
// each (path with header), holds them all open while a trickle sends each
// connection one more request, spread evenly over trickle, then closes
// them. pid is the gateway's, for its RSS; mem reads its Go memory;
// whileHeld runs while every connection is still open, after the trickle.
func keepAlive(ctx context.Context, addr, path, header string, n int, trickle time.Duration, pid int, mem func() goMem, whileHeld func() error) (keepAliveResult, error) {
	res := keepAliveResult{conns: n, trickleTotal: trickle}
	var err error
	if res.rssBefore, err = rssBytes(pid); err != nil {
		return res, err
	}
	res.memBefore = mem()
	req := buildRequests(addr, path, []string{header})[0]
	type held struct {
		c  net.Conn
		br *bufio.Reader
	}
	conns := make([]held, n)
	var (
		errs     atomic.Int64
		ok       atomic.Int64
		firstErr atomic.Value
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	defer func() {
		for _, h := range conns {
			if h.c != nil {
				h.c.Close()
			}
		}
	}()
	exchange := func(h held) bool {
		_ = h.c.SetDeadline(time.Now().Add(30 * time.Second))
		status, keep, err := roundTrip(h.c, h.br, req)
		switch {
		case err != nil:
			fail(err)
		case status != 200:
			fail(fmt.Errorf("status %d", status))
		case !keep:
			fail(fmt.Errorf("the gateway closed a keep-alive connection"))
		default:
			ok.Add(1)
			return true
		}
		return false
	}

	// Open: 64 dialers.
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					fail(err)
					continue
				}
				h := held{c: c, br: bufio.NewReaderSize(c, 1024)}
				conns[i] = h
				exchange(h)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if res.rssOpen, err = rssBytes(pid); err != nil {
		return res, err
	}

	// Trickle: every connection once more, evenly spread over trickle.
	interval := trickle / time.Duration(max(1, n))
	res.trickleRate = float64(n) / trickle.Seconds()
	start := time.Now()
	work := make(chan held, 256)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				exchange(h)
			}
		}()
	}
	for i, h := range conns {
		if h.c == nil {
			continue
		}
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		work <- h
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if res.rssAfter, err = rssBytes(pid); err != nil {
		return res, err
	}
	res.memAfter = mem()
	if err := whileHeld(); err != nil {
		return res, err
	}
	res.requests, res.errors = ok.Load(), errs.Load()
	if s, ok := firstErr.Load().(string); ok {
		res.firstErr = s
	}
	return res, nil
}
