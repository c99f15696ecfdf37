package store

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/portcullis/portcullis/internal/redistest"
)

// gateHook holds the first plain command until release is closed, and
// records the size of every pipeline.
type gateHook struct {
	once    sync.Once
	held    chan struct{} // closed when the first command is held
	release chan struct{}

	mu        sync.Mutex
	pipelines []int
}

func newGateHook() *gateHook {
	return &gateHook{held: make(chan struct{}), release: make(chan struct{})}
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hmget" {
			first := false
			h.once.Do(func() { first = true })
			if first {
				close(h.held)
				<-h.release
			}
		}
		return next(ctx, cmd)
	}
}

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.pipelines = append(h.pipelines, len(cmds))
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// queued waits until n reads wait in b's queue.
func queued(t *testing.T, b *readBatcher, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.queue)
		b.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reads queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// While every lane is busy, session reads queue and go out as pipelines of
// at most max reads; each read still gets its own session, and the server
// still sees exactly one HMGET per read.
func TestRedisSessionReadsArePipelinedUnderLoad(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	ctx := context.Background()

	const n = 11
	ids := make([]string, n)
	for i := range ids {
		ids[i] = mustCreate(t, st, NewSession{Subject: "user-" + strconv.Itoa(i), TTL: time.Hour}).Secret
	}
	unknown, _ := newSecret(0)

	hook := newGateHook()
	st.client.AddHook(hook)
	st.reads = newReadBatcher(st.client, time.Second, 1, 4)
	admin := srv.Client(t)
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	type result struct {
		sub string
		err error
	}
	read := func(id string, out chan<- result) {
		s, err := st.SessionByID(ctx, id)
		out <- result{s.Subject, err}
	}
	first := make(chan result, 1)
	go read(ids[0], first)
	<-hook.held // the only lane is busy

	results := make([]chan result, n)
	for i := 1; i < n; i++ {
		results[i] = make(chan result, 1)
		go read(ids[i], results[i])
	}
	unknownRes := make(chan result, 1)
	go read(unknown, unknownRes)
	queued(t, st.reads, n)
	close(hook.release)

	if r := <-first; r.err != nil || r.sub != "user-0" {
		t.Fatalf("first read = %q, %v", r.sub, r.err)
	}
	for i := 1; i < n; i++ {
		if r := <-results[i]; r.err != nil || r.sub != "user-"+strconv.Itoa(i) {
			t.Errorf("read %d = %q, %v; want user-%d", i, r.sub, r.err, i)
		}
	}
	if r := <-unknownRes; !errors.Is(r.err, ErrNotFound) {
		t.Errorf("unknown session: %v, want ErrNotFound", r.err)
	}
	hook.mu.Lock()
	sizes := hook.pipelines
	hook.mu.Unlock()
	if want := []int{4, 4, 3}; !slices.Equal(sizes, want) {
		t.Errorf("pipelines of %v reads, want %v", sizes, want)
	}
	if got := commandStats(t, admin)["hmget"]; got != n+1 {
		t.Errorf("server ran %d HMGET, want %d (one per read)", got, n+1)
	}
	st.reads.mu.Lock()
	defer st.reads.mu.Unlock()
	if st.reads.active != 0 || len(st.reads.queue) != 0 {
		t.Errorf("after the reads: %d lanes active, %d queued; want none", st.reads.active, len(st.reads.queue))
	}
}

// A queued read whose caller has gone away still leads its batch to the
// end: the other reads in it get their sessions.
func TestRedisBatchSurvivesItsLeaderLeaving(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	ids := []string{
		mustCreate(t, st, NewSession{Subject: "a", TTL: time.Hour}).Secret,
		mustCreate(t, st, NewSession{Subject: "b", TTL: time.Hour}).Secret,
		mustCreate(t, st, NewSession{Subject: "c", TTL: time.Hour}).Secret,
	}
	hook := newGateHook()
	st.client.AddHook(hook)
	st.reads = newReadBatcher(st.client, time.Second, 1, 8)

	go func() { _, _ = st.SessionByID(context.Background(), ids[0]) }()
	<-hook.held

	gone, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := st.SessionByID(gone, ids[1])
		leaderErr <- err
	}()
	queued(t, st.reads, 1) // ids[1] is first in the queue: it leads
	other := make(chan string, 1)
	go func() {
		s, err := st.SessionByID(context.Background(), ids[2])
		if err != nil {
			other <- err.Error()
			return
		}
		other <- s.Subject
	}()
	queued(t, st.reads, 2)
	cancel()
	close(hook.release)

	if got := <-other; got != "c" {
		t.Fatalf("read batched behind a cancelled leader = %q, want c", got)
	}
	if err := <-leaderErr; err != nil {
		t.Fatalf("cancelled leader: %v (its batch ran without its cancellation)", err)
	}
}

// A read alone, with no other in flight, is a plain command on the
// caller's context: a cancelled context fails it at once.
func TestRedisLoneReadUsesCallersContext(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := openRedis(t, RedisConfig{Addrs: []string{srv.Addr()}}, RedisOptions{})
	id := mustCreate(t, st, NewSession{Subject: "a", TTL: time.Hour}).Secret
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.SessionByID(ctx, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("SessionByID(cancelled) = %v, want context.Canceled", err)
	}
	if s, err := st.SessionByID(context.Background(), id); err != nil || s.Subject != "a" {
		t.Fatalf("SessionByID = %q, %v", s.Subject, err)
	}
}

// On a cluster, a pipeline of session reads spans every master: go-redis
// splits it by node, and each read still gets its own session's fields.
func TestRedisClusterPipelinedReads(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	st := openRedis(t, RedisConfig{Addrs: cl.Addrs()}, RedisOptions{})
	ctx := context.Background()

	const n = 24 // spread over the three masters' slots
	batch := make([]*batchedRead, n+1)
	for i := range n {
		id := mustCreate(t, st, NewSession{Subject: "user-" + strconv.Itoa(i), TTL: time.Hour}).Secret
		h := secretHash(id)
		batch[i] = &batchedRead{key: st.sessionKey(h[0], sessionHandle(h)), done: make(chan struct{}, 1)}
	}
	unknown, _ := newSecret(0)
	h := secretHash(unknown)
	batch[n] = &batchedRead{key: st.sessionKey(h[0], sessionHandle(h)), done: make(chan struct{}, 1)}

	st.reads.run(ctx, batch)
	for i, c := range batch[:n] {
		if c.err != nil || len(c.res) != len(sessionFields) {
			t.Fatalf("read %d: %d values, %v", i, len(c.res), c.err)
		}
		if got := rawFromValues(c.res).subject; got != "user-"+strconv.Itoa(i) {
			t.Errorf("read %d got the session of %q", i, got)
		}
	}
	if c := batch[n]; c.err != nil || slices.ContainsFunc(c.res, func(v string) bool { return v != "" }) {
		t.Errorf("unknown session read %q, %v; want every field empty", c.res, c.err)
	}
}
