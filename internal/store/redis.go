package store

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis shares state between Rampart instances through a Redis server,
// with go-redis. Rate limits are decided by redis_rate's GCRA script, one
// atomic round trip per decision, so instances together admit exactly the
// configured rate.
//
// Redis can go away. No call on a request's path waits more than Timeout
// for it (a Patient call, off that path, waits up to its own deadline).
// A call that fails is that call's failure only: one slow answer on a
// loaded machine is not an outage. It sends a PING, which has
// pingTimeouts × Timeout to answer (the first failure's ping; others wait
// for it): Redis is down when that fails too. Then calls return
// ErrUnavailable at once, except one probe every probeEvery (the circuit
// breaker's half-open state), until Redis answers again. OnChange hears
// about each outage and recovery once. Only Timeout running out or a
// connection failing counts against Redis: a caller whose own context is
// cancelled or past its deadline gets its context's error.
type Redis struct {
	client  redis.UniversalClient
	limiter *redis_rate.Limiter
	prefix  string
	// OnChange, if set, is told when Redis becomes unreachable (err set)
	// and when it is back (err nil). Set it before the store is used.
	OnChange func(err error)
	// OnEmptied, if set, is told when Redis has lost what it held (a
	// restart without persistence, a FLUSHALL): the epoch marker this
	// instance saw is gone. Set it before the store is used.
	OnEmptied func()

	timeout time.Duration
	down    atomic.Bool
	pinging atomic.Bool // a failed call's PING is under way
	closed  atomic.Bool
	// epoch is the marker this instance last saw in Redis (epochKey);
	// checked every epochEvery and when Redis comes back.
	epochMu   sync.Mutex
	epoch     string
	watching  sync.Once // the watch starts with the first call, once OnEmptied is set
	recheck   chan struct{}
	stopped   chan struct{}
	errors    atomic.Uint64 // calls that failed for Redis's sake
	nextProbe atomic.Int64  // unix nanoseconds
	mu        sync.Mutex    // orders OnChange calls
}

var (
	_ Store   = (*Redis)(nil)
	_ Lister  = (*Redis)(nil)
	_ Recents = (*Redis)(nil)
)

// Timeout is the default longest wait on Redis.
const Timeout = 100 * time.Millisecond

// probeEvery is how often a call tries Redis again during an outage.
const probeEvery = 250 * time.Millisecond

// pingTimeouts is how many Timeouts the PING after a failed call has:
// with the default Timeout, an outage is known 600 ms after the first
// call it failed.
const pingTimeouts = 5

// patientWait bounds a Patient call that brings no deadline of its own.
const patientWait = time.Second

type patientKey struct{}

// Patient marks ctx as a call off any request's path (a dashboard's
// shared feed, an alert's claim): it waits for Redis up to ctx's
// deadline (at most patientWait without one), not Timeout.
func Patient(ctx context.Context) context.Context {
	return context.WithValue(ctx, patientKey{}, true)
}

// OpenRedis connects to url ("redis://host:6379/0") with the default
// Timeout. It does not wait for Redis: Rampart starts, and limits fail as
// configured, if Redis is down.
func OpenRedis(url string) (*Redis, error) { return OpenRedisTimeout(url, Timeout) }

// OpenRedisTimeout is OpenRedis with its own bound on every wait.
func OpenRedisTimeout(url string, timeout time.Duration) (*Redis, error) {
	return OpenRedisWith(url, timeout, "")
}

// OpenRedisWith is OpenRedisTimeout that trusts the CA certificates in
// caFile ("" for the system's) for a rediss:// server's certificate.
func OpenRedisWith(url string, timeout time.Duration, caFile string) (*Redis, error) {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	roots, err := readRoots(caFile)
	if err != nil {
		return nil, err
	}
	var parse func(string) (*redis.UniversalOptions, error)
	switch {
	case strings.HasPrefix(url, "redis+sentinel://") || strings.HasPrefix(url, "rediss+sentinel://"):
		parse = ParseSentinelURL
	case strings.HasPrefix(url, "redis+cluster://") || strings.HasPrefix(url, "rediss+cluster://"):
		parse = ParseClusterURL
	}
	if parse != nil {
		uo, err := parse(url)
		if err != nil {
			return nil, fmt.Errorf("store: %w", withoutURL(err))
		}
		return openHosts(uo, timeout, roots), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("store: %w", withoutURL(err))
	}
	if opts.TLSConfig != nil {
		opts.TLSConfig.RootCAs = roots
	}
	wait := longestWait(timeout)
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = wait, wait, wait, wait
	opts.MaxRetries = -1 // a retry would double the wait; the next request tries again
	opts.ContextTimeoutEnabled = true
	opts.PoolSize, opts.MinIdleConns = poolSize, minIdleConns
	return newRedis(timeout, func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
		opts.OnConnect = onConnect
		return redis.NewClient(opts)
	}), nil
}

// longestWait is what go-redis is told a dial, read, write or wait for a
// pooled connection may take. Every call's context bounds its wait
// (timeout, a PING's or a Patient call's own): go-redis takes the sooner
// of the context's deadline and these, which are only the longest of them.
func longestWait(timeout time.Duration) time.Duration { return max(pingTimeouts*timeout, patientWait) }

// The connection pool: every request in flight may need a connection at
// once; waiting for one would eat the 100 ms budget and read as an
// outage.
const poolSize, minIdleConns = 256, 16

// newRedis makes the store around the client connect builds, which must
// call onConnect for every new connection.
func newRedis(timeout time.Duration, connect func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient) *Redis {
	r := &Redis{prefix: "rampart:", timeout: timeout, recheck: make(chan struct{}, 1), stopped: make(chan struct{})}
	// A new connection may be to a Redis that restarted (go-redis
	// replaces a dead pooled connection without an error), or to the
	// primary Sentinel promoted: look at the marker again.
	r.client = connect(func(context.Context, *redis.Conn) error { r.lookAgain(); return nil })
	r.limiter = redis_rate.NewLimiter(r.client)
	return r
}

// openHosts opens a store of several hosts: a primary that Redis
// Sentinel watches and fails over (ParseSentinelURL), or a Redis
// Cluster (ParseClusterURL), held to the same bounds as a single Redis
// (OpenRedisWith).
//
// Through Sentinel, the client asks the sentinels where the primary is,
// and again when it fails: requests in between fail as store_failure
// says, as in any outage. Of a cluster, it learns every node and which
// holds which slot from any one. Every call of the store touches one
// key, so no call crosses slots and no key needs a hash tag (one tag for
// all would put every key on one node); List scans every primary.
func openHosts(uo *redis.UniversalOptions, timeout time.Duration, roots *x509.CertPool) *Redis {
	if uo.TLSConfig != nil {
		uo.TLSConfig.RootCAs = roots
	}
	wait := longestWait(timeout)
	uo.DialTimeout, uo.ReadTimeout, uo.WriteTimeout, uo.PoolTimeout = wait, wait, wait, wait
	// No retry, as for a single Redis. A cluster's MOVED and ASK
	// redirects (a slot moving during a reshard) are MaxRedirects, left
	// at three.
	uo.MaxRetries = -1
	uo.ContextTimeoutEnabled = true
	uo.PoolSize, uo.MinIdleConns = poolSize, minIdleConns
	return newRedis(timeout, func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
		uo.OnConnect = onConnect
		return redis.NewUniversalClient(uo)
	})
}

// withoutURL is err without the URL it quotes: a store URL carries
// Redis's password, and an error goes to the terminal and the log.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readRoots reads the PEM certificates of a store_ca file; nil for "".
func readRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("store_ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("store_ca: %s holds no PEM certificate", file)
	}
	return roots, nil
}

// hostsURL is a store URL that names several hosts, which url.Parse
// cannot read: SCHEME://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][/PATH][?QUERY].
type hostsURL struct {
	tls        bool
	user, pass string
	hosts      []string
	path       []string // the path's segments, without empty ones
	query      url.Values
}

// parseHostsURL reads raw, whose scheme must be kind ("sentinel") after
// redis+ or rediss+; what a port of HOST:PORT is for goes in the errors.
func parseHostsURL(raw, kind, port string) (hostsURL, error) {
	var h hostsURL
	scheme, rest, _ := strings.Cut(raw, "://")
	switch scheme {
	case "redis+" + kind:
	case "rediss+" + kind:
		h.tls = true
	default:
		return h, fmt.Errorf("not a redis+%s:// URL", kind)
	}
	rest, query, _ := strings.Cut(rest, "?")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, pass, hasPass := strings.Cut(rest[:at], ":")
		if !hasPass {
			user, pass = "", user
		}
		h.user, h.pass = user, pass
		rest = rest[at+1:]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	for host := range strings.SplitSeq(hosts, ",") {
		if _, _, err := net.SplitHostPort(host); err != nil {
			return h, fmt.Errorf("%s %q: %w (give host:port, %s)", kind, host, err, port)
		}
		h.hosts = append(h.hosts, host)
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg != "" {
			h.path = append(h.path, seg)
		}
	}
	var err error
	h.query, err = url.ParseQuery(query)
	return h, err
}

// onlyParams refuses any query parameter of q not in allowed.
func onlyParams(q url.Values, allowed ...string) error {
	for k := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return fmt.Errorf("unknown parameter %q (this URL takes none)", k)
			}
			return fmt.Errorf("unknown parameter %q (only %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// options are the UniversalOptions every URL of several hosts names:
// the hosts, the credentials, and TLS for rediss+.
func (h hostsURL) options() *redis.UniversalOptions {
	uo := &redis.UniversalOptions{Addrs: h.hosts, Username: h.user, Password: h.pass}
	if h.tls {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return uo
}

// ParseSentinelURL reads a redis+sentinel://
// [:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER[/DB] URL
// (rediss+sentinel:// for TLS to the data nodes), the sentinels' own
// password as ?sentinel_password=.
func ParseSentinelURL(raw string) (*redis.UniversalOptions, error) {
	h, err := parseHostsURL(raw, "sentinel", "the sentinel's port, 26379 by default")
	if err != nil {
		return nil, err
	}
	if len(h.path) == 0 || len(h.path) > 2 {
		return nil, errors.New("name the primary as the sentinels know it: redis+sentinel://host:26379/mymaster[/db]")
	}
	uo := h.options()
	uo.MasterName = h.path[0]
	if len(h.path) == 2 {
		db, err := strconv.Atoi(h.path[1])
		if err != nil || db < 0 {
			return nil, fmt.Errorf("database %q is not a number", h.path[1])
		}
		uo.DB = db
	}
	if err := onlyParams(h.query, "sentinel_password"); err != nil {
		return nil, err
	}
	uo.SentinelPassword = h.query.Get("sentinel_password")
	return uo, nil
}

// ParseClusterURL reads a redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]
// URL (rediss+cluster:// for TLS): any of the cluster's nodes.
func ParseClusterURL(raw string) (*redis.UniversalOptions, error) {
	h, err := parseHostsURL(raw, "cluster", "any node's port")
	if err != nil {
		return nil, err
	}
	if len(h.path) > 1 || len(h.path) == 1 && h.path[0] != "0" {
		return nil, fmt.Errorf("a cluster has database 0 alone; drop %q from the URL", "/"+strings.Join(h.path, "/"))
	}
	if err := onlyParams(h.query); err != nil {
		return nil, err
	}
	uo := h.options()
	uo.IsClusterMode = true // a cluster even when the URL names one node
	return uo, nil
}

// epochKey holds a random marker, written by the first instance to find
// it missing. Redis never expires it (no TTL), so its disappearing, or
// changing under an instance, means Redis lost everything it held.
const epochKey = "epoch"

// epochEvery is how often each instance looks at the marker.
const epochEvery = 10 * time.Second

func (r *Redis) watchEpoch() {
	t := time.NewTicker(epochEvery)
	defer t.Stop()
	for {
		r.checkEpoch()
		select {
		case <-r.stopped:
			return
		case <-t.C:
		case <-r.recheck:
		}
	}
}

// checkEpoch reads the marker, writing one if there is none, and tells
// OnEmptied if the one this instance saw is gone: once per loss, on
// every instance.
func (r *Redis) checkEpoch() {
	ctx, cancel := context.WithTimeout(Patient(context.Background()), patientWait)
	defer cancel()
	var seen string
	err := r.call(ctx, func(ctx context.Context) error {
		mine := rand.Text()
		set, err := r.client.SetNX(ctx, r.prefix+epochKey, mine, 0).Result()
		if err != nil {
			return err
		}
		if set {
			seen = mine
			return nil
		}
		seen, err = r.client.Get(ctx, r.prefix+epochKey).Result()
		return err
	})
	if err != nil {
		return // unreachable: looked at again when it is back
	}
	r.epochMu.Lock()
	lost := r.epoch != "" && r.epoch != seen
	r.epoch = seen
	r.epochMu.Unlock()
	if lost && r.OnEmptied != nil {
		r.OnEmptied()
	}
}

// call runs f against Redis within Timeout, turning connection trouble
// into ErrUnavailable and keeping track of the outage.
func (r *Redis) call(ctx context.Context, f func(ctx context.Context) error) error {
	r.watching.Do(func() { go r.watchEpoch() })
	if r.down.Load() {
		next := r.nextProbe.Load()
		if time.Now().UnixNano() < next || !r.nextProbe.CompareAndSwap(next, time.Now().Add(probeEvery).UnixNano()) {
			r.errors.Add(1)
			return ErrUnavailable
		}
	}
	if err := ctx.Err(); err != nil {
		return err // the caller gave up before asking
	}
	wait := r.timeout
	if ctx.Value(patientKey{}) != nil {
		wait = patientWait
	}
	callCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := f(callCtx)
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		if r.down.Load() {
			r.changed(nil)
		}
		return err
	case callerGaveUp(ctx):
		// The caller's own cancellation or deadline cut the call short:
		// that says nothing about Redis. Only Rampart's timeout counts.
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return context.DeadlineExceeded
	}
	r.errors.Add(1)
	if !r.down.Load() {
		r.ping(err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// ping asks Redis whether it is there after a call failed with err, on a
// goroutine of its own: the failed call does not wait for it. Only one
// runs at a time; when it fails too, Redis is down.
func (r *Redis) ping(err error) {
	if !r.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer r.pinging.Store(false)
		d := pingTimeouts * r.timeout
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		perr := r.client.Ping(ctx).Err()
		switch {
		case r.closed.Load():
		case perr != nil:
			r.nextProbe.Store(time.Now().Add(probeEvery).UnixNano())
			r.changed(fmt.Errorf("%v, and a PING had no answer within %v (%v)", err, d, perr))
		default:
			r.lookAgain() // a connection lost may be a restart too quick to be an outage
		}
	}()
}

// Up reports whether Redis answered the last call (true until a call
// fails).
func (r *Redis) Up() bool { return !r.down.Load() }

// Errors counts the calls that failed because Redis did not answer (each
// decided by store_failure), outages' fast failures included.
func (r *Redis) Errors() uint64 { return r.errors.Load() }

// callerGaveUp reports whether ctx, the caller's context, has ended. Its
// deadline is compared with the clock too: go-redis sets the connection's
// deadline from the context, so the read can time out a moment before the
// context's own timer marks it done.
func callerGaveUp(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func (r *Redis) changed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if (err != nil) == r.down.Load() {
		return // someone else reported it already
	}
	r.down.Store(err != nil)
	if r.OnChange != nil {
		r.OnChange(err)
	}
	if err == nil {
		r.lookAgain() // back: did it come back empty?
	}
}

// lookAgain has the epoch marker checked now.
func (r *Redis) lookAgain() {
	select {
	case r.recheck <- struct{}{}:
	default:
	}
}

// quiet drops go-redis's own log lines (dial failures, to stderr, one per
// attempt): Rampart reports an outage once, through OnChange.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		v, err = r.client.Get(ctx, r.prefix+key).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return v, err
}

// Set implements Store.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return r.call(ctx, func(ctx context.Context) error { return r.client.Set(ctx, r.prefix+key, value, ttl).Err() })
}

// Add implements Store with SET NX.
func (r *Redis) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	var added bool
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		added, err = r.client.SetNX(ctx, r.prefix+key, value, ttl).Result()
		return err
	})
	return added, err
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, key string) error {
	return r.call(ctx, func(ctx context.Context) error { return r.client.Del(ctx, r.prefix+key).Err() })
}

// unlockScript deletes the lock only if this holder still has it.
var unlockScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return 0`)

// Lock implements Store with SET NX PX and a random token, polled every
// 50 ms until ctx ends.
func (r *Redis) Lock(ctx context.Context, key string, lease time.Duration) (func(context.Context) error, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	k := r.prefix + "lock:" + key
	for {
		var ok bool
		err := r.call(ctx, func(ctx context.Context) error {
			var err error
			ok, err = r.client.SetNX(ctx, k, token, lease).Result()
			return err
		})
		if err != nil {
			return nil, err
		}
		if ok {
			return func(ctx context.Context) error {
				return r.call(ctx, func(ctx context.Context) error { return unlockScript.Run(ctx, r.client, []string{k}, token).Err() })
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Allow implements Store with redis_rate's GCRA script.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	var res *redis_rate.Result
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		res, err = r.limiter.Allow(ctx, r.prefix+"rl:"+BucketKey(key), redis_rate.Limit{Rate: l.Rate, Burst: l.Burst, Period: l.Period})
		return err
	})
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: res.ResetAfter}
	if !d.Allowed {
		d.RetryAfter = res.RetryAfter
	}
	return d, nil
}

// List implements Lister with SCAN, which does not block Redis the way
// KEYS would; on a cluster, SCAN of every primary.
func (r *Redis) List(ctx context.Context, prefix string) ([]string, error) {
	nodes := []redis.Cmdable{r.client}
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		nodes = nil
		err := r.call(ctx, func(ctx context.Context) error {
			return cc.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
				mu.Lock()
				defer mu.Unlock()
				nodes = append(nodes, m)
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
	}
	var keys []string
	for _, n := range nodes {
		var err error
		if keys, err = r.scan(ctx, n, prefix, keys); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// scan appends the keys of node under prefix to keys.
func (r *Redis) scan(ctx context.Context, node redis.Cmdable, prefix string, keys []string) ([]string, error) {
	pattern := globEscape(r.prefix+prefix) + "*"
	var cursor uint64
	for {
		var batch []string
		err := r.call(ctx, func(ctx context.Context) error {
			var err error
			batch, cursor, err = node.Scan(ctx, cursor, pattern, 1000).Result()
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, k := range batch {
			keys = append(keys, strings.TrimPrefix(k, r.prefix))
		}
		if cursor == 0 {
			return keys, nil
		}
	}
}

// Push implements Recents: one round trip, LPUSH and LTRIM in a
// transaction.
func (r *Redis) Push(ctx context.Context, key string, keep int, values ...[]byte) error {
	if len(values) == 0 {
		return nil
	}
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return r.call(ctx, func(ctx context.Context) error {
		pipe := r.client.TxPipeline()
		pipe.LPush(ctx, r.prefix+key, args...)
		pipe.LTrim(ctx, r.prefix+key, 0, int64(keep)-1)
		_, err := pipe.Exec(ctx)
		return err
	})
}

// Recent implements Recents.
func (r *Redis) Recent(ctx context.Context, key string, n int) ([][]byte, error) {
	var vals []string
	err := r.call(ctx, func(ctx context.Context) error {
		var err error
		vals, err = r.client.LRange(ctx, r.prefix+key, 0, int64(n)-1).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}

// globEscape quotes the characters SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\^`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Close implements Store.
func (r *Redis) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	close(r.stopped)
	return r.client.Close()
}
