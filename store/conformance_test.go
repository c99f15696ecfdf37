package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// Store is the method set both implementations share; the conformance
// suite runs against it.
type Store interface {
	CreateSession(ctx context.Context, n NewSession) (Created, error)
	SessionByID(ctx context.Context, id string) (Session, error)
	SessionByHandle(ctx context.Context, handle string) (Session, error)
	TouchSession(ctx context.Context, handle string, now time.Time, idle time.Duration) error
	UpdateSession(ctx context.Context, handle string, u Update, now time.Time) (Session, error)
	DeleteSession(ctx context.Context, handle string) (Session, error)
	ListSessions(ctx context.Context, subject string) ([]Session, error)
	DeleteSubjectSessions(ctx context.Context, subject string) ([]Session, error)
	Rotate(ctx context.Context, refreshToken string, now time.Time, o RotateOptions) (Rotated, error)
	AddRevocation(ctx context.Context, r Revocation) error
	HasRevocation(ctx context.Context, key string) (bool, error)
	FindRevocation(ctx context.Context, id string) (Revocation, error)
	ScanRevocations(ctx context.Context, now time.Time, fn func(Revocation) error) error
	AddCutoff(ctx context.Context, c Cutoff) error
	ScanCutoffs(ctx context.Context, now time.Time, fn func(Cutoff) error) error
	Subscribe(ctx context.Context, onEvent func(Event), onSubscribed func()) error
	Ping(ctx context.Context) error
	Close() error
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Redis)(nil)
)

// clock is a settable clock at the store's millisecond resolution.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(time.Now().UnixMilli())} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// opener returns a fresh, empty store that reads the time from now.
type opener func(t *testing.T, now func() time.Time) Store

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustCreate(t testing.TB, st Store, n NewSession) Created {
	t.Helper()
	c, err := st.CreateSession(context.Background(), n)
	if err != nil {
		t.Fatalf("CreateSession(%+v): %v", n, err)
	}
	return c
}

func wantNotFound(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("%s: err = %v, want ErrNotFound", what, err)
	}
}

func handles(ss []Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Handle
	}
	return out
}

// runConformance checks every rule of the store contract against one
// implementation.
func runConformance(t *testing.T, open opener) {
	ctx := context.Background()
	setup := func(t *testing.T) (Store, *clock) {
		clk := newClock()
		return open(t, clk.Now), clk
	}

	t.Run("CreateAndGet", func(t *testing.T) {
		st, clk := setup(t)
		now := clk.Now()
		auth := now.Add(-time.Minute)
		c := mustCreate(t, st, NewSession{
			Subject: "alice", Roles: []string{"admin", "dev"}, Scopes: []string{"read"},
			ACR: "mfa", AMR: []string{"pwd", "otp"}, Attributes: map[string]string{"email": "a@example.com"},
			AuthTime: auth, TTL: time.Hour, Idle: 10 * time.Minute,
		})
		checkSecret(t, c.Secret)
		s := c.Session
		if s.Handle == "" || s.Subject != "alice" || !s.CreatedAt.Equal(now) || !s.LastSeenAt.Equal(now) ||
			!s.ExpiresAt.Equal(now.Add(time.Hour)) || s.Mode != "" || s.Generation != 0 || len(c.Evicted) != 0 {
			t.Fatalf("created %+v", c)
		}
		for name, get := range map[string]func() (Session, error){
			"SessionByID":     func() (Session, error) { return st.SessionByID(ctx, c.Secret) },
			"SessionByHandle": func() (Session, error) { return st.SessionByHandle(ctx, s.Handle) },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.Handle != s.Handle || got.Subject != "alice" || !slices.Equal(got.Roles, []string{"admin", "dev"}) ||
				!slices.Equal(got.Scopes, []string{"read"}) || got.ACR != "mfa" || !slices.Equal(got.AMR, []string{"pwd", "otp"}) ||
				got.Attributes["email"] != "a@example.com" || !got.AuthTime.Equal(auth) || !got.CreatedAt.Equal(now) ||
				!got.ExpiresAt.Equal(s.ExpiresAt) || !got.UpdatedAt.IsZero() {
				t.Fatalf("%s = %+v, want %+v", name, got, s)
			}
		}
		// The handle is not a credential, nor is any other string.
		other := "x" // another first character: the same ID but for one byte
		if c.Secret[0] == 'x' {
			other = "y"
		}
		for _, id := range []string{"", s.Handle, c.Secret[:42], c.Secret + "A", other + c.Secret[1:]} {
			_, err := st.SessionByID(ctx, id)
			wantNotFound(t, fmt.Sprintf("SessionByID(%q)", id), err)
		}
		_, err := st.SessionByHandle(ctx, "not-a-handle")
		wantNotFound(t, "SessionByHandle(unknown)", err)
		// Two sessions never share an ID or a handle.
		c2 := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour})
		if c2.Secret == c.Secret || c2.Session.Handle == s.Handle {
			t.Fatal("two sessions share a secret or handle")
		}
	})

	t.Run("CreateRejectsBadInput", func(t *testing.T) {
		st, _ := setup(t)
		for _, n := range []NewSession{
			{TTL: time.Hour},
			{Subject: "a"},
			{Subject: "a", TTL: time.Hour, Mode: "cookies"},
			{Subject: "a", TTL: time.Hour, Idle: -1},
			{Subject: "a", TTL: time.Hour, MaxPerSubject: -1},
		} {
			if _, err := st.CreateSession(ctx, n); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("CreateSession(%+v) err = %v, want a validation error", n, err)
			}
		}
	})

	t.Run("ReturnedSessionsAreCopies", func(t *testing.T) {
		st, _ := setup(t)
		c := mustCreate(t, st, NewSession{Subject: "alice", Roles: []string{"user"}, TTL: time.Hour})
		got, _ := st.SessionByID(ctx, c.Secret)
		got.Roles[0] = "admin"
		c.Session.Roles[0] = "admin"
		again, _ := st.SessionByID(ctx, c.Secret)
		if again.Roles[0] != "user" {
			t.Fatalf("stored roles changed through a returned session: %v", again.Roles)
		}
	})

	t.Run("AbsoluteExpiry", func(t *testing.T) {
		st, clk := setup(t)
		c := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour})
		clk.Advance(time.Hour - time.Millisecond)
		if _, err := st.SessionByID(ctx, c.Secret); err != nil {
			t.Fatalf("just before ExpiresAt: %v", err)
		}
		// Touching cannot extend the absolute end.
		if err := st.TouchSession(ctx, c.Session.Handle, clk.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
		now := clk.Advance(time.Millisecond)
		_, err := st.SessionByID(ctx, c.Secret)
		wantNotFound(t, "at ExpiresAt", err)
		_, err = st.SessionByHandle(ctx, c.Session.Handle)
		wantNotFound(t, "SessionByHandle at ExpiresAt", err)
		wantNotFound(t, "TouchSession at ExpiresAt", st.TouchSession(ctx, c.Session.Handle, now, time.Hour))
		_, err = st.UpdateSession(ctx, c.Session.Handle, Update{}, now)
		wantNotFound(t, "UpdateSession at ExpiresAt", err)
		if l, _ := st.ListSessions(ctx, "alice"); len(l) != 0 {
			t.Fatalf("ListSessions lists an expired session: %v", handles(l))
		}
	})

	t.Run("IdleExpiryAndTouch", func(t *testing.T) {
		st, clk := setup(t)
		const idle = 10 * time.Minute
		c := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Idle: idle})
		h := c.Session.Handle
		now := clk.Advance(idle - time.Second)
		if _, err := st.SessionByID(ctx, c.Secret); err != nil {
			t.Fatalf("within idle: %v", err)
		}
		if err := st.TouchSession(ctx, h, now, idle); err != nil {
			t.Fatalf("TouchSession: %v", err)
		}
		got, err := st.SessionByID(ctx, c.Secret)
		if err != nil || !got.LastSeenAt.Equal(now) {
			t.Fatalf("after touch: LastSeenAt = %v, %v; want %v", got.LastSeenAt, err, now)
		}
		clk.Advance(idle - time.Second) // 2*idle-2s after creation: alive thanks to the touch
		if _, err := st.SessionByID(ctx, c.Secret); err != nil {
			t.Fatalf("within idle of the touch: %v", err)
		}
		clk.Advance(time.Second)
		_, err = st.SessionByID(ctx, c.Secret)
		wantNotFound(t, "idle after the touch", err)
		wantNotFound(t, "TouchSession of an idle-expired session", st.TouchSession(ctx, h, clk.Now(), idle))

		// Idle 0: only the absolute end applies.
		c0 := mustCreate(t, st, NewSession{Subject: "bob", TTL: time.Hour})
		clk.Advance(59 * time.Minute)
		if _, err := st.SessionByID(ctx, c0.Secret); err != nil {
			t.Fatalf("no idle timeout: %v", err)
		}
		wantNotFound(t, "TouchSession(unknown)", st.TouchSession(ctx, "AAAAAAAAAAAAAAAAAAAAAA", clk.Now(), idle))
	})

	t.Run("Update", func(t *testing.T) {
		st, clk := setup(t)
		auth := clk.Now()
		c := mustCreate(t, st, NewSession{Subject: "alice", Roles: []string{"user"}, Scopes: []string{"a"}, ACR: "pwd",
			AMR: []string{"pwd"}, AuthTime: auth, Attributes: map[string]string{"k": "v"}, TTL: time.Hour})
		now := clk.Advance(time.Minute)
		roles, acr, amr, at := []string{"user", "admin"}, "mfa", []string{"pwd", "otp"}, now
		got, err := st.UpdateSession(ctx, c.Session.Handle, Update{Roles: &roles, ACR: &acr, AMR: &amr, AuthTime: &at}, now)
		if err != nil {
			t.Fatal(err)
		}
		check := func(name string, s Session) {
			t.Helper()
			if !slices.Equal(s.Roles, roles) || s.ACR != "mfa" || !slices.Equal(s.AMR, amr) || !s.AuthTime.Equal(now) ||
				!s.UpdatedAt.Equal(now) || !slices.Equal(s.Scopes, []string{"a"}) || s.Attributes["k"] != "v" ||
				s.Subject != "alice" || !s.CreatedAt.Equal(auth) {
				t.Fatalf("%s after update = %+v", name, s)
			}
		}
		check("UpdateSession", got)
		byID, _ := st.SessionByID(ctx, c.Secret)
		check("SessionByID", byID)
		// Clearing a list.
		empty := []string{}
		got, err = st.UpdateSession(ctx, c.Session.Handle, Update{Scopes: &empty}, clk.Advance(time.Second))
		if err != nil || len(got.Scopes) != 0 || !slices.Equal(got.Roles, roles) {
			t.Fatalf("clearing scopes: %+v, %v", got, err)
		}
		_, err = st.UpdateSession(ctx, "AAAAAAAAAAAAAAAAAAAAAA", Update{ACR: &acr}, now)
		wantNotFound(t, "UpdateSession(unknown)", err)
	})

	t.Run("Delete", func(t *testing.T) {
		st, _ := setup(t)
		c := mustCreate(t, st, NewSession{Subject: "alice", Roles: []string{"r"}, TTL: time.Hour})
		other := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour})
		got, err := st.DeleteSession(ctx, c.Session.Handle)
		if err != nil || got.Handle != c.Session.Handle || got.Subject != "alice" || !slices.Equal(got.Roles, []string{"r"}) {
			t.Fatalf("DeleteSession = %+v, %v", got, err)
		}
		_, err = st.SessionByID(ctx, c.Secret)
		wantNotFound(t, "SessionByID after delete", err)
		_, err = st.DeleteSession(ctx, c.Session.Handle)
		wantNotFound(t, "second DeleteSession", err)
		if l, _ := st.ListSessions(ctx, "alice"); !slices.Equal(handles(l), []string{other.Session.Handle}) {
			t.Fatalf("ListSessions after delete = %v", handles(l))
		}
		if _, err := st.SessionByID(ctx, other.Secret); err != nil {
			t.Fatalf("the other session: %v", err)
		}
	})

	t.Run("ListAndDeleteSubject", func(t *testing.T) {
		st, clk := setup(t)
		var want []string
		var secrets []string
		for i := range 4 {
			n := NewSession{Subject: "alice", TTL: time.Hour}
			if i == 2 {
				n.Mode = ModeTokens
			}
			c := mustCreate(t, st, n)
			want = append(want, c.Session.Handle)
			secrets = append(secrets, c.Secret)
			clk.Advance(time.Second)
		}
		short := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Minute})
		bob := mustCreate(t, st, NewSession{Subject: "bob", TTL: time.Hour})
		l, err := st.ListSessions(ctx, "alice")
		if err != nil || !slices.Equal(handles(l), append(slices.Clone(want), short.Session.Handle)) {
			t.Fatalf("ListSessions = %v, %v; want oldest first %v + short", handles(l), err, want)
		}
		if l[2].Mode != ModeTokens || l[2].Generation != 1 {
			t.Fatalf("the family is listed as %+v", l[2])
		}
		clk.Advance(time.Minute) // the short one ends
		l, _ = st.ListSessions(ctx, "alice")
		if !slices.Equal(handles(l), want) {
			t.Fatalf("ListSessions after expiry = %v, want %v", handles(l), want)
		}
		if l, _ := st.ListSessions(ctx, "nobody"); len(l) != 0 {
			t.Fatalf("ListSessions(nobody) = %v", handles(l))
		}

		deleted, err := st.DeleteSubjectSessions(ctx, "alice")
		if err != nil || !slices.Equal(handles(deleted), want) {
			t.Fatalf("DeleteSubjectSessions = %v, %v; want %v", handles(deleted), err, want)
		}
		for i, s := range secrets {
			_, err := st.SessionByID(ctx, s)
			_, rerr := st.Rotate(ctx, s, clk.Now(), RotateOptions{Grace: time.Minute})
			if !errors.Is(err, ErrNotFound) || !errors.Is(rerr, ErrNotFound) {
				t.Fatalf("secret %d after subject delete: %v, %v", i, err, rerr)
			}
		}
		if l, _ := st.ListSessions(ctx, "alice"); len(l) != 0 {
			t.Fatalf("ListSessions after subject delete = %v", handles(l))
		}
		if _, err := st.SessionByID(ctx, bob.Secret); err != nil {
			t.Fatalf("another subject's session: %v", err)
		}
		if d, err := st.DeleteSubjectSessions(ctx, "alice"); err != nil || len(d) != 0 {
			t.Fatalf("second DeleteSubjectSessions = %v, %v", handles(d), err)
		}
	})

	t.Run("MaxPerSubject", func(t *testing.T) {
		st, clk := setup(t)
		var cs []Created
		for range 3 {
			cs = append(cs, mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, MaxPerSubject: 3}))
			clk.Advance(time.Second)
		}
		fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens, MaxPerSubject: 3})
		if !slices.Equal(handles(fam.Evicted), []string{cs[0].Session.Handle}) {
			t.Fatalf("Evicted = %v, want the oldest %s", handles(fam.Evicted), cs[0].Session.Handle)
		}
		_, err := st.SessionByID(ctx, cs[0].Secret)
		wantNotFound(t, "evicted session", err)
		clk.Advance(time.Second)
		// Lowering the maximum evicts several, families included.
		c := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, MaxPerSubject: 1})
		if !slices.Equal(handles(c.Evicted), []string{cs[1].Session.Handle, cs[2].Session.Handle, fam.Session.Handle}) {
			t.Fatalf("Evicted = %v", handles(c.Evicted))
		}
		if c.Evicted[2].Mode != ModeTokens {
			t.Fatalf("evicted family reported as %+v", c.Evicted[2])
		}
		_, err = st.Rotate(ctx, fam.Secret, clk.Now(), RotateOptions{})
		wantNotFound(t, "refresh token of an evicted family", err)
		if l, _ := st.ListSessions(ctx, "alice"); !slices.Equal(handles(l), []string{c.Session.Handle}) {
			t.Fatalf("ListSessions = %v", handles(l))
		}
		// Expired sessions do not count and are not reported as evicted.
		st2, clk2 := setup(t)
		old := mustCreate(t, st2, NewSession{Subject: "bob", TTL: time.Minute, MaxPerSubject: 2})
		keep := mustCreate(t, st2, NewSession{Subject: "bob", TTL: time.Hour, MaxPerSubject: 2})
		clk2.Advance(time.Minute)
		n := mustCreate(t, st2, NewSession{Subject: "bob", TTL: time.Hour, MaxPerSubject: 2})
		if len(n.Evicted) != 0 {
			t.Fatalf("Evicted = %v, want none (%s had expired)", handles(n.Evicted), old.Session.Handle)
		}
		if _, err := st2.SessionByID(ctx, keep.Secret); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("MaxPerSubjectConcurrent", func(t *testing.T) {
		st, _ := setup(t)
		const n, max = 20, 3
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created []Created
			evicted = map[string]bool{}
		)
		stop := make(chan struct{})
		observed := make(chan error, 1)
		go func() { // the limit holds at every moment
			defer close(observed)
			for {
				select {
				case <-stop:
					return
				default:
				}
				l, err := st.ListSessions(ctx, "alice")
				if err != nil || len(l) > max {
					observed <- fmt.Errorf("ListSessions saw %d sessions (err %v), max %d", len(l), err, max)
					return
				}
			}
		}()
		for range n {
			wg.Go(func() {
				c, err := st.CreateSession(ctx, NewSession{Subject: "alice", TTL: time.Hour, MaxPerSubject: max})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				created = append(created, c)
				for _, e := range c.Evicted {
					if evicted[e.Handle] {
						t.Errorf("%s evicted twice", e.Handle)
					}
					evicted[e.Handle] = true
				}
			})
		}
		wg.Wait()
		close(stop)
		if err := <-observed; err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, c := range created {
			_, err := st.SessionByID(ctx, c.Secret)
			switch {
			case err == nil:
				live++
				if evicted[c.Session.Handle] {
					t.Errorf("%s was reported evicted but still works", c.Session.Handle)
				}
			case errors.Is(err, ErrNotFound):
				if !evicted[c.Session.Handle] {
					t.Errorf("%s vanished without being reported evicted", c.Session.Handle)
				}
			default:
				t.Fatal(err)
			}
		}
		if live != max || len(evicted) != n-max {
			t.Fatalf("%d sessions work and %d were evicted, want %d and %d", live, len(evicted), max, n-max)
		}
	})

	t.Run("FamilyIsNotASession", func(t *testing.T) {
		st, clk := setup(t)
		fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens, Roles: []string{"r"}})
		checkSecret(t, fam.Secret)
		if fam.Session.Mode != ModeTokens || fam.Session.Generation != 1 || fam.Session.Handle == "" {
			t.Fatalf("family = %+v", fam.Session)
		}
		_, err := st.SessionByID(ctx, fam.Secret)
		wantNotFound(t, "SessionByID(refresh token)", err)
		_, err = st.SessionByID(ctx, fam.Session.Handle)
		wantNotFound(t, "SessionByID(family handle)", err)
		if got, err := st.SessionByHandle(ctx, fam.Session.Handle); err != nil || got.Generation != 1 || got.Mode != ModeTokens {
			t.Fatalf("SessionByHandle(family) = %+v, %v", got, err)
		}
		wantNotFound(t, "TouchSession(family)", st.TouchSession(ctx, fam.Session.Handle, clk.Now(), time.Hour))
		// And a session ID is not a refresh token.
		s := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour})
		_, err = st.Rotate(ctx, s.Secret, clk.Now(), RotateOptions{Grace: time.Minute})
		wantNotFound(t, "Rotate(session ID)", err)
		// A family can be updated (a PATCH of a tokens-mode session).
		roles := []string{"admin"}
		got, err := st.UpdateSession(ctx, fam.Session.Handle, Update{Roles: &roles}, clk.Now())
		if err != nil || !slices.Equal(got.Roles, roles) || got.Generation != 1 || !got.UpdatedAt.Equal(clk.Now()) {
			t.Fatalf("UpdateSession(family) = %+v, %v", got, err)
		}
	})

	t.Run("RotateStateMachine", func(t *testing.T) {
		st, clk := setup(t)
		o := RotateOptions{Grace: 10 * time.Second, Idle: time.Hour}
		fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: 24 * time.Hour, Idle: time.Hour, Mode: ModeTokens})
		t1 := fam.Secret

		// Fresh: the current token rotates.
		now := clk.Advance(time.Minute)
		r1, err := st.Rotate(ctx, t1, now, o)
		if err != nil || r1.Replayed || r1.Token == t1 || r1.Session.Generation != 2 || r1.Session.Handle != fam.Session.Handle ||
			!r1.Session.LastSeenAt.Equal(now) {
			t.Fatalf("first rotation = %+v, %v", r1, err)
		}
		checkSecret(t, r1.Token)
		t2 := r1.Token

		// Replaced less than Grace ago: a fresh token each time, joining the
		// current generation; no new rotation.
		seen := map[string]bool{t1: true, t2: true}
		var branches []string
		for _, d := range []time.Duration{0, time.Second, o.Grace - time.Millisecond} {
			r, err := st.Rotate(ctx, t1, now.Add(d), o)
			if err != nil || !r.Replayed || seen[r.Token] || r.Session.Generation != 2 {
				t.Fatalf("replay %s after the rotation = %+v, %v; want a fresh token of generation 2", d, r, err)
			}
			checkSecret(t, r.Token)
			seen[r.Token] = true
			branches = append(branches, r.Token)
		}
		if s, _ := st.SessionByHandle(ctx, fam.Session.Handle); s.Generation != 2 {
			t.Fatalf("generation after replays = %d, want 2", s.Generation)
		}

		// A token a replay issued is current: it rotates. That ends the
		// generation: the rotation's own token and the other replays' are
		// replaced now, so within the grace they too get fresh tokens, of
		// generation 3.
		now = clk.Advance(time.Minute)
		r2, err := st.Rotate(ctx, branches[1], now, o)
		if err != nil || r2.Replayed || r2.Session.Generation != 3 || seen[r2.Token] {
			t.Fatalf("second rotation, of a replay's token = %+v, %v", r2, err)
		}
		t3 := r2.Token
		for _, tok := range []string{t2, branches[0], branches[1]} {
			r, err := st.Rotate(ctx, tok, now.Add(o.Grace-time.Millisecond), o)
			if err != nil || !r.Replayed || r.Session.Generation != 3 || r.Token == t3 {
				t.Fatalf("replay of a generation-2 token within the grace = %+v, %v", r, err)
			}
		}

		// branches[2], replaced at the second rotation, is a reuse once the
		// grace has passed: the family dies.
		now = clk.Advance(o.Grace)
		r, err := st.Rotate(ctx, branches[2], now, o)
		if !errors.Is(err, ErrReused) || r.Session.Handle != fam.Session.Handle || r.Session.Subject != "alice" || r.Token != "" {
			t.Fatalf("reuse = %+v, %v; want ErrReused with the family", r, err)
		}
		_, err = st.SessionByHandle(ctx, fam.Session.Handle)
		wantNotFound(t, "family after reuse", err)
		for i, tok := range append([]string{t1, t2, t3}, branches...) {
			_, err := st.Rotate(ctx, tok, now, o)
			wantNotFound(t, fmt.Sprintf("token %d after reuse", i+1), err)
		}
		if l, _ := st.ListSessions(ctx, "alice"); len(l) != 0 {
			t.Fatalf("ListSessions after reuse = %v", handles(l))
		}
	})

	t.Run("RotateReuseAtGrace", func(t *testing.T) {
		st, clk := setup(t)
		for _, grace := range []time.Duration{0, 5 * time.Second} {
			fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
			now := clk.Now()
			r1, err := st.Rotate(ctx, fam.Secret, now, RotateOptions{Grace: grace})
			if err != nil {
				t.Fatal(err)
			}
			// Exactly Grace later is too late.
			_, err = st.Rotate(ctx, fam.Secret, now.Add(grace), RotateOptions{Grace: grace})
			if !errors.Is(err, ErrReused) {
				t.Fatalf("grace %s: replay at the grace's end: %v, want ErrReused", grace, err)
			}
			_, err = st.Rotate(ctx, r1.Token, now.Add(grace), RotateOptions{Grace: grace})
			wantNotFound(t, "the successor after reuse", err)
		}
	})

	t.Run("RotateExpiry", func(t *testing.T) {
		st, clk := setup(t)
		o := RotateOptions{Grace: 10 * time.Second, Idle: time.Hour}

		// Idle: the family's creation Idle, then each rotation's.
		fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: 24 * time.Hour, Idle: time.Hour, Mode: ModeTokens})
		now := clk.Advance(50 * time.Minute)
		r, err := st.Rotate(ctx, fam.Secret, now, o)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(59 * time.Minute) // 109 min after creation: alive thanks to the rotation
		if _, err := st.SessionByHandle(ctx, fam.Session.Handle); err != nil {
			t.Fatalf("family within the idle of its rotation: %v", err)
		}
		now = clk.Advance(time.Minute)
		_, err = st.Rotate(ctx, r.Token, now, o)
		wantNotFound(t, "Rotate after idle", err)
		_, err = st.SessionByHandle(ctx, fam.Session.Handle)
		wantNotFound(t, "idle family", err)
		// An old token of a dead family is not a reuse either.
		_, err = st.Rotate(ctx, fam.Secret, now, o)
		wantNotFound(t, "replaced token of an idle family", err)

		// Absolute end: rotations do not extend it.
		fam = mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
		tok := fam.Secret
		for range 3 {
			r, err := st.Rotate(ctx, tok, clk.Advance(20*time.Minute-time.Millisecond), o)
			if err != nil {
				t.Fatal(err)
			}
			tok = r.Token
		}
		_, err = st.Rotate(ctx, tok, clk.Advance(3*time.Millisecond), o)
		wantNotFound(t, "Rotate at the family's ExpiresAt", err)

		// Idle 0 at creation and rotation: only the absolute end.
		fam = mustCreate(t, st, NewSession{Subject: "alice", TTL: 48 * time.Hour, Mode: ModeTokens})
		if _, err := st.Rotate(ctx, fam.Secret, clk.Advance(40*time.Hour), RotateOptions{}); err != nil {
			t.Fatalf("no idle: %v", err)
		}
	})

	t.Run("RotateUnknownAndDeleted", func(t *testing.T) {
		st, clk := setup(t)
		o := RotateOptions{Grace: time.Minute}
		for _, tok := range []string{"", "nope", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
			_, err := st.Rotate(ctx, tok, clk.Now(), o)
			wantNotFound(t, fmt.Sprintf("Rotate(%q)", tok), err)
		}
		fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
		r, err := st.Rotate(ctx, fam.Secret, clk.Now(), o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.DeleteSession(ctx, fam.Session.Handle)
		if err != nil || got.Mode != ModeTokens || got.Generation != 2 {
			t.Fatalf("DeleteSession(family) = %+v, %v", got, err)
		}
		for _, tok := range []string{fam.Secret, r.Token} {
			_, err := st.Rotate(ctx, tok, clk.Now(), o)
			wantNotFound(t, "Rotate of a deleted family", err)
		}
	})

	t.Run("RotateConcurrent", func(t *testing.T) {
		st, clk := setup(t)
		fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
		const n = 50
		o := RotateOptions{Grace: 10 * time.Second, Idle: time.Hour}
		now := clk.Now()
		results := make([]Rotated, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = st.Rotate(ctx, fam.Secret, now, o)
			})
		}
		close(start)
		wg.Wait()
		fresh := 0
		tokens := map[string]bool{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("rotation %d: %v", i, errs[i])
			}
			if !results[i].Replayed {
				fresh++
			}
			if tokens[results[i].Token] || results[i].Session.Generation != 2 {
				t.Fatalf("rotation %d: generation %d, token seen before: %v; want a fresh token of generation 2 each",
					i, results[i].Session.Generation, tokens[results[i].Token])
			}
			tokens[results[i].Token] = true
		}
		if fresh != 1 {
			t.Fatalf("%d rotations were fresh, want exactly 1", fresh)
		}
		if s, _ := st.SessionByHandle(ctx, fam.Session.Handle); s.Generation != 2 {
			t.Fatalf("generation = %d, want 2", s.Generation)
		}
		// Any of them rotates, once: generation 3 retires all the others.
		r, err := st.Rotate(ctx, results[n-1].Token, now, o)
		if err != nil || r.Replayed || r.Session.Generation != 3 {
			t.Fatalf("rotating one of the tokens = %+v, %v", r, err)
		}
		r, err = st.Rotate(ctx, results[0].Token, now.Add(o.Grace), o)
		if !errors.Is(err, ErrReused) {
			t.Fatalf("another generation-2 token after the grace = %+v, %v; want ErrReused", r, err)
		}
	})

	t.Run("RotateReplayLimit", func(t *testing.T) {
		st, clk := setup(t)
		fam := mustCreate(t, st, NewSession{Subject: "alice", TTL: time.Hour, Mode: ModeTokens})
		o := RotateOptions{Grace: 10 * time.Second, Idle: time.Hour}
		now := clk.Now()
		r, err := st.Rotate(ctx, fam.Secret, now, o)
		if err != nil {
			t.Fatal(err)
		}
		// The rotation's token and MaxGenerationTokens-1 replays fill the
		// generation; one more replay is refused and changes nothing.
		for i := range MaxGenerationTokens - 1 {
			if _, err := st.Rotate(ctx, fam.Secret, now, o); err != nil {
				t.Fatalf("replay %d: %v", i+1, err)
			}
		}
		full, err := st.Rotate(ctx, fam.Secret, now, o)
		if !errors.Is(err, ErrReplayLimit) || full.Token != "" || full.Session.Handle != fam.Session.Handle {
			t.Fatalf("replay %d = %+v, %v; want ErrReplayLimit with the family", MaxGenerationTokens, full, err)
		}
		if s, err := st.SessionByHandle(ctx, fam.Session.Handle); err != nil || s.Generation != 2 {
			t.Fatalf("the family after the refused replay: %+v, %v", s, err)
		}
		// The generation's tokens still rotate, and a rotation empties it.
		r, err = st.Rotate(ctx, r.Token, now, o)
		if err != nil || r.Replayed || r.Session.Generation != 3 {
			t.Fatalf("rotation after the refused replay = %+v, %v", r, err)
		}
		if r, err := st.Rotate(ctx, fam.Secret, now, o); err != nil || !r.Replayed || r.Session.Generation != 3 {
			t.Fatalf("a replay once the generation moved on = %+v, %v; want a token of generation 3", r, err)
		}
	})

	t.Run("Revocations", func(t *testing.T) {
		st, clk := setup(t)
		now := clk.Now()
		tok := Revocation{Kind: KindToken, Issuer: "https://idp.example.com/", ID: "jti-1", ExpiresAt: now.Add(time.Hour)}
		sess := Revocation{Kind: KindSession, ID: "AAAAAAAAAAAAAAAAAAAAAA", ExpiresAt: now.Add(time.Minute)}
		hashed := Revocation{Kind: KindToken, Issuer: "i", ID: "sha256:abc", ExpiresAt: now.Add(2 * time.Hour)}
		for _, r := range []Revocation{tok, sess, hashed, tok} { // adding twice is harmless
			if err := st.AddRevocation(ctx, r); err != nil {
				t.Fatalf("AddRevocation(%+v): %v", r, err)
			}
		}
		for _, r := range []Revocation{tok, sess, hashed} {
			if ok, err := st.HasRevocation(ctx, r.Key()); err != nil || !ok {
				t.Fatalf("HasRevocation(%q) = %v, %v", r.Key(), ok, err)
			}
			got, err := st.FindRevocation(ctx, r.ID)
			if err != nil || !sameRevocation(got, r) {
				t.Fatalf("FindRevocation(%q) = %+v, %v; want %+v", r.ID, got, err, r)
			}
		}
		for _, key := range []string{TokenKey("https://idp.example.com/", "jti-2"), TokenKey("https://other/", "jti-1"), SessionKey("jti-1")} {
			if ok, err := st.HasRevocation(ctx, key); err != nil || ok {
				t.Fatalf("HasRevocation(%q) = %v, %v; want false", key, ok, err)
			}
		}
		_, err := st.FindRevocation(ctx, "jti-2")
		wantNotFound(t, "FindRevocation(unknown)", err)
		if got := scanRevocations(t, st, now); !sameRevocationSet(got, []Revocation{tok, sess, hashed}) {
			t.Fatalf("ScanRevocations = %+v", got)
		}

		// A later expiry extends; an earlier one does not shorten.
		longer := tok
		longer.ExpiresAt = now.Add(3 * time.Hour)
		shorter := tok
		shorter.ExpiresAt = now.Add(time.Minute)
		for _, r := range []Revocation{longer, shorter} {
			if err := st.AddRevocation(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := st.FindRevocation(ctx, tok.ID); !got.ExpiresAt.Equal(longer.ExpiresAt) {
			t.Fatalf("expiry = %v, want the later %v", got.ExpiresAt, longer.ExpiresAt)
		}

		// Expiry.
		now = clk.Advance(time.Minute)
		if ok, _ := st.HasRevocation(ctx, sess.Key()); ok {
			t.Fatal("HasRevocation true after its expiry")
		}
		_, err = st.FindRevocation(ctx, sess.ID)
		wantNotFound(t, "FindRevocation after expiry", err)
		if got := scanRevocations(t, st, now); !sameRevocationSet(got, []Revocation{longer, hashed}) {
			t.Fatalf("ScanRevocations after an expiry = %+v", got)
		}
		// An already expired revocation is not stored.
		past := Revocation{Kind: KindToken, Issuer: "i", ID: "old", ExpiresAt: now.Add(-time.Second)}
		if err := st.AddRevocation(ctx, past); err != nil {
			t.Fatal(err)
		}
		if ok, _ := st.HasRevocation(ctx, past.Key()); ok {
			t.Fatal("an expired revocation was stored")
		}
		for _, bad := range []Revocation{{Kind: "jwt", ID: "x", ExpiresAt: now.Add(time.Hour)}, {Kind: KindToken, ExpiresAt: now.Add(time.Hour)}} {
			if err := st.AddRevocation(ctx, bad); err == nil {
				t.Fatalf("AddRevocation(%+v) accepted", bad)
			}
		}
		// A scan stops at fn's error.
		stopErr := errors.New("stop")
		calls := 0
		err = st.ScanRevocations(ctx, now, func(Revocation) error { calls++; return stopErr })
		if !errors.Is(err, stopErr) || calls != 1 {
			t.Fatalf("ScanRevocations with a failing fn: %v after %d calls", err, calls)
		}
	})

	t.Run("RevocationSameIDTwoIssuers", func(t *testing.T) {
		st, clk := setup(t)
		now := clk.Now()
		a := Revocation{Kind: KindToken, Issuer: "a", ID: "j", ExpiresAt: now.Add(time.Minute)}
		b := Revocation{Kind: KindToken, Issuer: "b", ID: "j", ExpiresAt: now.Add(time.Hour)}
		for _, r := range []Revocation{a, b} {
			if err := st.AddRevocation(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := st.FindRevocation(ctx, "j"); err != nil || !sameRevocation(got, b) {
			t.Fatalf("FindRevocation = %+v, %v; want the longest-lived %+v", got, err, b)
		}
		if ok, _ := st.HasRevocation(ctx, a.Key()); !ok {
			t.Fatal("the other issuer's entry is gone")
		}
	})

	t.Run("ScanManyRevocations", func(t *testing.T) {
		st, clk := setup(t)
		now := clk.Now()
		const n = 5000
		for i := range n {
			r := Revocation{Kind: KindToken, Issuer: "iss", ID: fmt.Sprint(i), ExpiresAt: now.Add(time.Duration(1+i%2) * time.Hour)}
			if err := st.AddRevocation(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		seen := make([]bool, n)
		count := func(now time.Time) int {
			clear(seen)
			distinct := 0
			err := st.ScanRevocations(ctx, now, func(r Revocation) error {
				var i int
				if _, err := fmt.Sscan(r.ID, &i); err != nil || r.Issuer != "iss" || !now.Before(r.ExpiresAt) {
					return fmt.Errorf("unexpected entry %+v", r)
				}
				if !seen[i] {
					seen[i] = true
					distinct++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return distinct
		}
		if got := count(now); got != n {
			t.Fatalf("scan saw %d entries, want %d", got, n)
		}
		if got := count(clk.Advance(time.Hour)); got != n/2 {
			t.Fatalf("scan after the first half expired saw %d entries, want %d", got, n/2)
		}
	})

	t.Run("Cutoffs", func(t *testing.T) {
		st, clk := setup(t)
		now := clk.Now()
		sub := Cutoff{Kind: CutoffSubject, Name: "alice", Before: now, ExpiresAt: now.Add(time.Hour)}
		ses := Cutoff{Kind: CutoffSession, Name: "AAAAAAAAAAAAAAAAAAAAAA", Before: now, ExpiresAt: now.Add(time.Minute)}
		for _, c := range []Cutoff{sub, ses} {
			if err := st.AddCutoff(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if got := scanCutoffs(t, st, now); !sameCutoffSet(got, []Cutoff{sub, ses}) {
			t.Fatalf("ScanCutoffs = %+v", got)
		}
		// An earlier Before does not win; a later one does.
		earlier := sub
		earlier.Before = now.Add(-time.Minute)
		if err := st.AddCutoff(ctx, earlier); err != nil {
			t.Fatal(err)
		}
		later := sub
		later.Before = now.Add(time.Second)
		later.ExpiresAt = now.Add(2 * time.Hour)
		if got := scanCutoffs(t, st, now); !sameCutoffSet(got, []Cutoff{sub, ses}) {
			t.Fatalf("after an earlier Before: %+v", got)
		}
		if err := st.AddCutoff(ctx, later); err != nil {
			t.Fatal(err)
		}
		now = clk.Advance(time.Minute)
		if got := scanCutoffs(t, st, now); !sameCutoffSet(got, []Cutoff{later}) {
			t.Fatalf("after a later Before and an expiry: %+v", got)
		}
		if err := st.AddCutoff(ctx, Cutoff{Kind: "user", Name: "x", ExpiresAt: now.Add(time.Hour)}); err == nil {
			t.Fatal("a bad kind was accepted")
		}
	})

	t.Run("Subscribe", func(t *testing.T) {
		st, clk := setup(t)
		sctx, cancel := context.WithCancel(ctx)
		events := make(chan Event, 16)
		subscribed := make(chan struct{}, 4)
		done := make(chan error, 1)
		go func() {
			done <- st.Subscribe(sctx, func(e Event) { events <- e }, func() { subscribed <- struct{}{} })
		}()
		select {
		case <-subscribed:
		case <-time.After(10 * time.Second):
			t.Fatal("onSubscribed not called")
		}
		now := clk.Now()
		r := Revocation{Kind: KindToken, Issuer: "iss", ID: "j1", ExpiresAt: now.Add(time.Hour)}
		c := Cutoff{Kind: CutoffSubject, Name: "alice", Before: now, ExpiresAt: now.Add(time.Hour)}
		if err := st.AddRevocation(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := st.AddCutoff(ctx, c); err != nil {
			t.Fatal(err)
		}
		for i, want := range []Event{{Revocation: &r}, {Cutoff: &c}} {
			select {
			case e := <-events:
				if !e.PublishedAt.Equal(now) ||
					(want.Revocation != nil && (e.Revocation == nil || !sameRevocation(*e.Revocation, r) || e.Cutoff != nil)) ||
					(want.Cutoff != nil && (e.Cutoff == nil || !sameCutoff(*e.Cutoff, c) || e.Revocation != nil)) {
					t.Fatalf("event %d = %+v (rev %+v, cutoff %+v)", i, e, e.Revocation, e.Cutoff)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("event %d not delivered", i)
			}
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Subscribe returned %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Subscribe did not return after cancel")
		}
	})

	t.Run("Ping", func(t *testing.T) {
		st, _ := setup(t)
		if err := st.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// checkSecret checks the form of a session ID or refresh token: 32 random
// bytes in unpadded base64url.
func checkSecret(t testing.TB, s string) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if len(s) != 43 || err != nil || len(b) != 32 {
		t.Fatalf("secret %q is not 32 bytes of unpadded base64url", s)
	}
}

func scanRevocations(t testing.TB, st Store, now time.Time) []Revocation {
	t.Helper()
	var out []Revocation
	if err := st.ScanRevocations(context.Background(), now, func(r Revocation) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func scanCutoffs(t testing.TB, st Store, now time.Time) []Cutoff {
	t.Helper()
	var out []Cutoff
	if err := st.ScanCutoffs(context.Background(), now, func(c Cutoff) error {
		out = append(out, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameRevocation(a, b Revocation) bool {
	return a.Kind == b.Kind && a.Issuer == b.Issuer && a.ID == b.ID && a.ExpiresAt.Equal(b.ExpiresAt)
}

func sameRevocationSet(got, want []Revocation) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g Revocation) bool { return sameRevocation(g, w) }) {
			return false
		}
	}
	return true
}

func sameCutoff(a, b Cutoff) bool {
	return a.Kind == b.Kind && a.Name == b.Name && a.Before.Equal(b.Before) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func sameCutoffSet(got, want []Cutoff) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g Cutoff) bool { return sameCutoff(g, w) }) {
			return false
		}
	}
	return true
}
