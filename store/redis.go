package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/portcullis/portcullis/internal/metrics"
)

// Redis key design. Every key starts with RedisConfig.KeyPrefix (P below)
// and carries a hash tag, so that everything one operation touches lives in
// one Redis Cluster slot and each operation is a single command or a single
// Lua script on one node.
//
// Sessions and refresh families are spread over 256 slot groups. The group
// of a subject is the first byte of SHA-256(subject), written "{gXX}" in hex.
// Every key about a subject is in its group:
//
//	P{gXX}s:<handle>      hash   the session or family record; TTL = its end
//	                              (min(ExpiresAt, last use + idle))
//	P{gXX}u:<sha(sub)>    zset   the subject's index: handle -> created_at ms;
//	                              TTL = the latest ExpiresAt of its sessions
//	P{gXX}r:<sha(token)>  hash   a refresh-token pointer: family handle, and
//	                              once replaced, replaced_at and the name of
//	                              the token that replaced it; TTL = see Rotate
//	P{gXX}p:<handle>      zset   a family's pointers: sha(token) -> pointer
//	                              expiry ms, to delete them with the family
//
// (sha(x) is unpadded base64url of SHA-256(x).) The group is derivable from
// every name the store is asked about, without a lookup:
//   - a session ID is drawn until SHA-256(id)[0] is its subject's group, and
//     its handle is base64url(SHA-256(id)[:16]), so SessionByID computes the
//     key from the ID and reads it with one HMGET; the record keeps the
//     full SHA-256, compared in constant time;
//   - a family handle is random with its first byte set to the group, and
//     each refresh token is drawn until SHA-256(token)[0] is the group, so
//     Rotate finds the pointer (and the family) in the token's group;
//   - any handle's first byte is its group.
//
// Secrets never reach Redis: keys and values hold only SHA-256 of session
// IDs and refresh tokens. A family record's current-token field lists the
// names of every current token of its generation (see Rotate).
//
// The denylist lives under one tag, "{rev}":
//
//	P{rev}e:<Revocation.Key>  string  expires_at ms; TTL = until ExpiresAt
//	P{rev}ix                  zset    Revocation.Key -> expires_at ms
//	P{rev}id:<Revocation.ID>  hash    Revocation.Key -> expires_at ms (FindRevocation)
//	P{rev}c:<kind>            zset    cutoff name -> expires_at ms
//	P{rev}cv:<kind>           hash    cutoff name -> before ms
//
// A Revocation.Key encodes kind, issuer and ID unambiguously, so a scan of the
// index alone rebuilds every entry. Changes are published on the channel
// "P" + "events" as compact JSON (PUBLISH is broadcast to every node of a
// cluster, so any node can subscribe).

// The scripts run on whichever client NewRedis builds.
var _ redis.Scripter = redis.UniversalClient(nil)

// Defaults of RedisConfig fields left zero.
const (
	defaultTimeout   = time.Second
	defaultKeyPrefix = "portcullis:"
	defaultAddr      = "127.0.0.1:6379"
	// maxReadBatch caps the session reads sent as one pipeline.
	maxReadBatch = 128
)

// RedisOptions are the Redis store's dependencies.
type RedisOptions struct {
	// Logger logs subscription losses; nil means no logging.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics counts technical failures (StoreErrors); nil means none.
	Metrics *metrics.Metrics
}

// Redis is the store shared by several nodes through Redis: a single
// server, a Sentinel-managed master or a Cluster.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	channel string
	now     func() time.Time
	log     *zap.Logger
	metrics *metrics.Metrics
	// reads batches SessionByID's reads under load.
	reads *readBatcher
}

// NewRedis builds the client for cfg: one address is a single server,
// several a Cluster, a MasterName makes them Sentinels. It does not
// connect; the first call (or Ping) does. Zero fields of cfg take their
// defaults (Config.SetDefaults).
func NewRedis(cfg RedisConfig, opts RedisOptions) (*Redis, error) {
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{defaultAddr}
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = defaultKeyPrefix
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if err := (&Config{Type: "redis", Redis: cfg}).Validate(); err != nil {
		return nil, fmt.Errorf("store: redis config: %w", err)
	}
	uo := &redis.UniversalOptions{
		Addrs:            cfg.Addrs,
		MasterName:       cfg.MasterName,
		Username:         cfg.Username,
		Password:         cfg.Password,
		SentinelPassword: cfg.SentinelPassword,
		DB:               cfg.DB,
		PoolSize:         cfg.PoolSize,
		DialTimeout:      cfg.Timeout,
		// A refused connection fails fast rather than retrying for the
		// whole timeout; the command retries still ride out a restart.
		DialerRetries:         2,
		DialerRetryTimeout:    20 * time.Millisecond,
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
		// RESP2: every reply the store reads is the same in both protocols,
		// and RESP3 makes go-redis look for push notifications before each
		// command, a cost on the session hot path that buys nothing here.
		Protocol: 2,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	if cfg.TLS {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	client := redis.NewUniversalClient(uo)
	return &Redis{
		client:  client,
		reads:   newReadBatcher(client, cfg.Timeout, max(2, runtime.GOMAXPROCS(0)), maxReadBatch),
		prefix:  cfg.KeyPrefix,
		timeout: cfg.Timeout,
		channel: cfg.KeyPrefix + "events",
		now:     now,
		log:     log,
		metrics: opts.Metrics,
	}, nil
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return r.fail("ping", err)
	}
	return nil
}

// Close closes the client's connections.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// ctx bounds one Redis call by the configured timeout.
func (r *Redis) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// fail counts a technical failure and wraps it for the caller.
func (r *Redis) fail(op string, err error) error {
	if !errors.Is(err, context.Canceled) { // a client that went away is not a store failure
		r.countError()
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// countError counts a technical failure in StoreErrors.
func (r *Redis) countError() {
	if r.metrics != nil {
		r.metrics.StoreErrors.Inc()
	}
}

// decodeRecord is decodeRecord, counting a corrupt record as a failure.
func (r *Redis) decodeRecord(f rawRecord) (record, error) {
	rec, err := decodeRecord(f)
	if err != nil {
		r.countError()
	}
	return rec, err
}

// decodeFlat is decodeFlat, counting a corrupt record as a failure.
func (r *Redis) decodeFlat(v any) (record, error) {
	rec, err := decodeFlat(v)
	if err != nil {
		r.countError()
	}
	return rec, err
}

// isNil reports Redis's "no such key" answer.
func isNil(err error) bool { return errors.Is(err, redis.Nil) }

// Key names; see the key design above.

func (r *Redis) tag(g byte) string {
	const hex = "0123456789abcdef"
	return r.prefix + "{g" + string([]byte{hex[g>>4], hex[g&15]}) + "}"
}

func (r *Redis) sessionKey(g byte, handle string) string  { return r.tag(g) + "s:" + handle }
func (r *Redis) subjectKey(g byte, sh string) string      { return r.tag(g) + "u:" + sh }
func (r *Redis) pointerKey(g byte, name string) string    { return r.tag(g) + "r:" + name }
func (r *Redis) pointersKey(g byte, handle string) string { return r.tag(g) + "p:" + handle }
func (r *Redis) revTag() string                           { return r.prefix + "{rev}" }
func (r *Redis) revEntryKey(key string) string            { return r.revTag() + "e:" + key }
func (r *Redis) revIndexKey() string                      { return r.revTag() + "ix" }
func (r *Redis) revIDKey(id string) string                { return r.revTag() + "id:" + id }
func (r *Redis) cutoffIndexKey(kind string) string        { return r.revTag() + "c:" + kind }
func (r *Redis) cutoffValuesKey(kind string) string       { return r.revTag() + "cv:" + kind }

// msArg formats a millisecond value for a script argument.
func msArg(v int64) string { return strconv.FormatInt(v, 10) }

// ttlMS is the positive number of milliseconds from now until t (at least 1,
// since a TTL of 0 would be refused).
func ttlMS(t, now time.Time) int64 {
	return max(ms(t)-ms(now), 1)
}
