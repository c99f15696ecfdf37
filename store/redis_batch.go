package store

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// readBatcher coalesces the session reads of concurrent requests into
// pipelines (group commit): a read that finds fewer than lanes round trips
// in flight runs at once, alone, as a plain HMGET; a read that finds every
// lane busy queues, and the lane that finishes next hands the whole queue,
// as one pipeline, to the first read in it. Each request still costs one
// HMGET on the server, but under load many share one write and one read
// system call, one pool checkout and one round trip, which are most of what
// a Redis read costs the gateway's CPU. With one request at a time nothing
// queues and nothing waits: the latency of an idle gateway is unchanged.
//
// A pipeline on a Cluster is split by go-redis per node and sent to the
// nodes in parallel.
type readBatcher struct {
	client  redis.UniversalClient
	timeout time.Duration
	lanes   int // round trips in flight at most
	max     int // reads per pipeline at most

	mu     sync.Mutex
	active int // lanes in use
	queue  []*batchedRead
}

// batchedRead is one queued read.
type batchedRead struct {
	key string
	res []string
	err error
	// done is signalled once: with batch set, the read leads batch (its
	// own read is batch[0]); otherwise res and err are set.
	done  chan struct{}
	batch []*batchedRead
}

var batchedReads = sync.Pool{New: func() any { return &batchedRead{done: make(chan struct{}, 1)} }}

func newReadBatcher(client redis.UniversalClient, timeout time.Duration, lanes, maxBatch int) *readBatcher {
	return &readBatcher{client: client, timeout: timeout, lanes: max(lanes, 1), max: max(maxBatch, 1)}
}

// read reads sessionFields of the hash at key (HMGET; a missing field or
// key is ""), within ctx and the store timeout. A read that is waiting in
// the queue waits for its batch even when ctx ends first: the lane that
// runs it bounds it by the store timeout, and it may have to lead the next
// batch.
func (b *readBatcher) read(ctx context.Context, key string) ([]string, error) {
	b.mu.Lock()
	if b.active < b.lanes {
		b.active++
		b.mu.Unlock()
		res, err := b.one(ctx, key)
		b.release()
		return res, err
	}
	c := batchedReads.Get().(*batchedRead)
	c.key = key
	b.queue = append(b.queue, c)
	b.mu.Unlock()

	<-c.done
	if c.batch != nil {
		b.run(ctx, c.batch)
		b.release()
	}
	res, err := c.res, c.err
	*c = batchedRead{done: c.done}
	batchedReads.Put(c)
	return res, err
}

// one runs a read alone, as the caller's own command.
func (b *readBatcher) one(ctx context.Context, key string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cmd := hmget(ctx, key)
	_ = b.client.Process(ctx, cmd)
	return cmd.Result()
}

// sessionFieldArgs are sessionFields as command arguments, converted once.
var sessionFieldArgs = func() []any {
	a := make([]any, len(sessionFields))
	for i, f := range sessionFields {
		a[i] = f
	}
	return a
}()

// hmget is HMGET key sessionFields... (go-redis's HMGet answers []any).
func hmget(ctx context.Context, key string) *redis.StringSliceCmd {
	args := make([]any, 2, 2+len(sessionFieldArgs))
	args[0], args[1] = "hmget", key
	return redis.NewStringSliceCmd(ctx, append(args, sessionFieldArgs...)...)
}

// run sends batch as one pipeline and hands every other read its result.
// It runs on the context of the read that leads it, without its
// cancellation: the leader's client going away must not fail the others.
func (b *readBatcher) run(ctx context.Context, batch []*batchedRead) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	defer cancel()
	pipe := b.client.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(batch))
	for i, c := range batch {
		cmds[i] = hmget(ctx, c.key)
		_ = pipe.Process(ctx, cmds[i])
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, c := range batch {
		c.res, c.err = cmds[i].Result()
		if i > 0 {
			c.done <- struct{}{}
		}
	}
}

// release frees the caller's lane, or hands it, with up to max queued
// reads, to the first of them.
func (b *readBatcher) release() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.active--
		b.mu.Unlock()
		return
	}
	n := min(len(b.queue), b.max)
	batch := make([]*batchedRead, n)
	copy(batch, b.queue)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	b.mu.Unlock()
	batch[0].batch = batch
	batch[0].done <- struct{}{}
}
