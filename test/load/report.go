package main

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// profiled is one profile taken under load.
type profiled struct {
	t    *target
	rec  *runRec
	base string
}

// report is what a run measured.
type report struct {
	o         *options
	h         *harness
	generator string
	targets   []*target
	runs      []*runRec
	keep      *keepAliveResult
	profiles  []profiled
	logs      logScan
}

func (r *runRec) rps() float64 {
	if r.res.Seconds <= 0 {
		return 0
	}
	return float64(r.res.Requests) / r.res.Seconds
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// row is one line of the table.
type row struct {
	t                  *target
	rps, ratio         float64
	p50, p99           float64 // µs, 1 connection
	redisPerReq        float64
	redisCalls         map[string]int64
	requests, errors   int64
	firstErr           string
	rpsRuns, ratioRuns []float64
	// cpuRatioRuns are the bracketing bare runs' CPU per request over the
	// target's, per round; cpuRatio their median.
	cpuRatioRuns []float64
	cpuRatio     float64
	// proxyCPU, loadBusy and cpuPerReq are medians over the throughput runs.
	proxyCPU, loadBusy, cpuPerReq float64
}

// bracket is the geometric mean of a bare-run measure before and after a
// target run (just before when there is no run after).
func bracket(before, after *runRec, f func(*runRec) float64) float64 {
	if after == nil || f(after) <= 0 {
		return f(before)
	}
	return math.Sqrt(f(before) * f(after))
}

// quartiles returns the first and third quartiles of xs (linear
// interpolation between closest ranks).
func quartiles(xs []float64) (q1, q3 float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(p float64) float64 {
		pos := p * float64(len(s)-1)
		i := int(pos)
		if i+1 >= len(s) {
			return s[i]
		}
		return s[i] + (pos-float64(i))*(s[i+1]-s[i])
	}
	return at(0.25), at(0.75)
}

func (rep *report) rows() []row {
	var out []row
	for _, t := range rep.targets {
		rw := row{t: t, redisCalls: map[string]int64{}}
		var p50s, p99s, cpus, loads, perReq []float64
		cmds := map[string]int64{}
		for _, r := range rep.runs {
			if r.t != t {
				continue
			}
			rw.requests += r.res.Requests
			rw.errors += r.res.Errors
			if rw.firstErr == "" {
				rw.firstErr = r.res.FirstErr
			}
			for k, v := range r.redis {
				cmds[k] += v
			}
			if r.conns == 1 {
				p50s = append(p50s, r.res.P50us)
				p99s = append(p99s, r.res.P99us)
				continue
			}
			rw.rpsRuns = append(rw.rpsRuns, r.rps())
			cpus, loads, perReq = append(cpus, r.proxyCPU), append(loads, r.loadBusy), append(perReq, r.cpuPerReq)
			if r.bare != nil && r.bare.rps() > 0 {
				rw.ratioRuns = append(rw.ratioRuns, r.rps()/bracket(r.bare, r.bareAfter, (*runRec).rps))
				if r.cpuPerReq > 0 {
					rw.cpuRatioRuns = append(rw.cpuRatioRuns,
						bracket(r.bare, r.bareAfter, func(b *runRec) float64 { return b.cpuPerReq })/r.cpuPerReq)
				}
			}
		}
		rw.rps, rw.p50, rw.p99 = median(rw.rpsRuns), median(p50s), median(p99s)
		rw.proxyCPU, rw.loadBusy, rw.cpuPerReq = median(cpus), median(loads), median(perReq)
		rw.ratio, rw.cpuRatio = 1, 1
		if t != rep.h.bare {
			rw.ratio, rw.cpuRatio = median(rw.ratioRuns), median(rw.cpuRatioRuns)
		}
		var total int64
		for k, v := range cmds {
			total += v
			rw.redisCalls[k] = v
		}
		if rw.requests > 0 {
			rw.redisPerReq = float64(total) / float64(rw.requests)
		}
		out = append(out, rw)
	}
	return out
}

// failed reports errors seen by the load or the gateways.
func (rep *report) failed() bool {
	for _, rw := range rep.rows() {
		if rw.errors > 0 {
			return true
		}
	}
	return rep.keep != nil && rep.keep.errors > 0
}

func fmtUS(us float64) string {
	switch {
	case math.IsNaN(us):
		return "-"
	case math.Abs(us) >= 1000:
		return fmt.Sprintf("%.2fms", us/1000)
	default:
		return fmt.Sprintf("%.0fµs", us)
	}
}

func (rep *report) print(w io.Writer) {
	o, h := rep.o, rep.h
	rows := rep.rows()
	pin := fmt.Sprintf("proxy under test on CPU %d; load generator, upstream and Redis on CPU %d", h.proxyCPU, h.loadCPU)
	if h.proxyCPU < 0 {
		pin = "NOT pinned (needs Linux and 2+ CPUs): figures are not per core"
	}
	fmt.Fprintf(w, "\nportcullis load harness: %d round(s) × %s per run, %d conns for req/s, 1 conn for latency; %s\n",
		o.rounds, o.duration, o.conns, rep.generator)
	fmt.Fprintf(w, "%s; %d revoked tokens in Redis; cold JWT rotates %d RS256-2048 tokens; %s, %d CPUs\n\n",
		pin, o.revoked, o.tokens, runtime.Version(), runtime.NumCPU())
	if idle := idleSetting(); idle != "" {
		set := ""
		if o.haltPoll >= 0 {
			set = " (set for this run by -halt-poll-ns)"
		}
		fmt.Fprintf(w, "idle CPUs: %s%s\n\n", idle, set)
	}
	fmt.Fprintf(w, "%-28s %15s %6s %12s %12s %13s %15s %7s %19s\n",
		"target", "req/s (median)", "ratio", "p50(1 conn)", "p99(1 conn)", "Δp99 vs bare", "redis cmds/req", "errors", "CPU µs/req (ratio)")
	bareP99 := rows[0].p99
	for _, rw := range rows {
		dp99 := "-"
		if rw.t != h.bare {
			dp99 = fmtUS(rw.p99 - bareP99)
			if rw.p99 >= bareP99 {
				dp99 = "+" + dp99
			}
		}
		fmt.Fprintf(w, "%-28s %15.0f %6.2f %12s %12s %13s %15.2f %7d %12.1f (%.2f)\n",
			rw.t.label, rw.rps, rw.ratio, fmtUS(rw.p50), fmtUS(rw.p99), dp99, rw.redisPerReq, rw.errors,
			rw.cpuPerReq, rw.cpuRatio)
	}
	fmt.Fprintf(w, "(ratio: median over rounds of the run's req/s / the geometric mean of the bare runs just before and after it;\n"+
		" CPU µs/req: CPU time of the process under test per request in the %d-conn runs, median: its per-core cost\n"+
		" even when the load side, not the proxy, limited req/s (see the CPU shares below); its ratio: the bracketing\n"+
		" bare runs' / the run's, median over rounds)\n", o.conns)

	fmt.Fprintf(w, "\nreq/s per round (%d-conn runs; (ratio) as in the table); quartiles of the ratios; median CPU use of the process under test and busy share of the load CPU:\n", o.conns)
	for _, rw := range rows {
		var parts []string
		for i, v := range rw.rpsRuns {
			s := fmt.Sprintf("%.0f", v)
			if rw.t != h.bare && i < len(rw.ratioRuns) {
				s += fmt.Sprintf(" (%.2f)", rw.ratioRuns[i])
			}
			parts = append(parts, s)
		}
		spread := ""
		if rw.t != h.bare {
			q1, q3 := quartiles(rw.ratioRuns)
			c1, c3 := quartiles(rw.cpuRatioRuns)
			spread = fmt.Sprintf("; ratio quartiles %.2f–%.2f, CPU ratio quartiles %.2f–%.2f", q1, q3, c1, c3)
		}
		fmt.Fprintf(w, "  %-28s %s%s; proxy CPU %.0f%%, load CPU %.0f%%\n", rw.t.label, strings.Join(parts, ", "), spread, 100*rw.proxyCPU, 100*rw.loadBusy)
	}
	fmt.Fprintf(w, "\nredis commands: calls (per request) over all the target's runs, from INFO commandstats without housekeeping;\n"+
		"commands a script runs are counted as well as its EVALSHA; the denylist's periodic rebuild (an EVALSHA prune\n"+
		"script with ZCOUNT) lands in whichever run it falls in:\n")
	for _, rw := range rows {
		keys := make([]string, 0, len(rw.redisCalls))
		for k := range rw.redisCalls {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d (%.4f)", k, rw.redisCalls[k], float64(rw.redisCalls[k])/float64(max(1, rw.requests))))
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		fmt.Fprintf(w, "  %-28s %s  (%d requests)\n", rw.t.label, strings.Join(parts, ", "), rw.requests)
		if rw.errors > 0 {
			fmt.Fprintf(w, "  %-28s ERRORS: %d, first: %s\n", "", rw.errors, rw.firstErr)
		}
	}
	if k := rep.keep; k != nil {
		fmt.Fprintf(w, "\nkeep-alive: %d connections held open on portcullis jwt cached (ulimit -n %d), %d requests answered 200 "+
			"(trickle %.0f req/s over %s), %d errors\n", k.conns, h.nofile, k.requests, k.trickleRate, k.trickleTotal, k.errors)
		if k.conns < o.keepaliveWanted {
			fmt.Fprintf(w, "  NOT %d connections as asked: ulimit -n is too low on this machine\n", o.keepaliveWanted)
		}
		fmt.Fprintf(w, "  gateway RSS %.1f MiB before, %.1f MiB open, %.1f MiB after the trickle: %.1f KiB per connection\n",
			mib(k.rssBefore), mib(k.rssOpen), mib(k.rssAfter), k.perConn()/1024)
		if b, a := k.memBefore, k.memAfter; b.heap >= 0 && a.heap >= 0 {
			n := float64(k.conns)
			fmt.Fprintf(w, "  of which Go heap in use %.1f KiB and goroutine stacks %.1f KiB per connection; goroutines %.0f -> %.0f\n",
				(a.heap-b.heap)/n/1024, (a.stack-b.stack)/n/1024, b.goroutines, a.goroutines)
		}
		if k.errors > 0 {
			fmt.Fprintf(w, "  ERRORS: first: %s\n", k.firstErr)
		}
	}
	if len(rep.profiles) > 0 {
		fmt.Fprintf(w, "\nprofiles (process under test, %d conns; inspect with go tool pprof -top FILE, compare with -diff_base):\n", o.conns)
		for _, p := range rep.profiles {
			fmt.Fprintf(w, "  %-28s %.0f req/s during the profile: %s.cpu.pb.gz; allocations: go tool pprof -sample_index=alloc_space -base %s.allocs.before.pb.gz %s.allocs.after.pb.gz\n",
				p.t.label, p.rec.rps(), p.base, p.base, p.base)
		}
	}
	if rep.keep != nil && o.profileDir != "" {
		fmt.Fprintf(w, "  heap profile while the keep-alive connections were held: %s\n", filepath.Join(o.profileDir, "keepalive.heap.pb.gz"))
	}
	fmt.Fprintf(w, "\ngateway log: %d warn/error lines", rep.logs.warnings)
	if c := rep.logs.cancelled; c > 0 {
		fmt.Fprintf(w, ", %d of them 503 store-unavailable with \"context canceled\": session lookups of requests whose client closed its connection (the load generator ending a run), logged as a store failure", c)
	}
	fmt.Fprintln(w)
	for _, s := range rep.logs.samples {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
