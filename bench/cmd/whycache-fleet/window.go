package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"time"
)

// window measures the servers and the fleet over an interval: each
// server's CPU and the statements the server's other clients sent (the
// global counters less the benchmark's own sessions on it).
type window struct {
	servers []*server
	own     [][]*sql.DB // per server, the benchmark's pools on it
	before  []serverSnapshot
	cpu     *cpuMeter
	load    string
	start   time.Time
}

// Phase is what a window measured.
type Phase struct {
	Seconds float64 `json:"seconds"`
	// Statements of the server's other clients, per server.
	Statements map[string]counters `json:"statements"`
	// QueryCache is each server's query cache counters (cacheNames) over
	// the window, for every client: all zero unless the server runs with
	// query_cache_type on.
	QueryCache map[string]counters `json:"query_cache,omitempty"`
	ServerCPU  map[string]float64  `json:"server_cpu_pct"`
	// LoadAvg is /proc/loadavg at the start and the end: the machine is
	// shared, and its load explains figures.
	LoadAvg string `json:"loadavg"`
}

// openWindow starts a measurement of servers; own[i] are the
// benchmark's pools on servers[i], whose statements are left out.
func openWindow(ctx context.Context, servers []*server, own [][]*sql.DB) (*window, error) {
	w := &window{servers: servers, own: own, load: loadAvg()}
	var pids []string
	for i, s := range servers {
		snap, err := snapshotServer(ctx, s.db, own[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		w.before = append(w.before, snap)
		pids = append(pids, fmt.Sprint(s.pid))
	}
	w.cpu = startCPU(pids)
	w.start = time.Now()
	return w, nil
}

// close ends the measurement.
func (w *window) close(ctx context.Context) (Phase, error) {
	p := Phase{Seconds: time.Since(w.start).Seconds(), Statements: map[string]counters{}, QueryCache: map[string]counters{}, ServerCPU: map[string]float64{}}
	for i, c := range w.cpu.stop() {
		p.ServerCPU[w.servers[i].name] = c
	}
	for i, s := range w.servers {
		after, err := snapshotServer(ctx, s.db, w.own[i])
		if err != nil {
			return p, fmt.Errorf("%s: %w", s.name, err)
		}
		d, err := othersDelta(w.before[i], after)
		if err != nil {
			return p, fmt.Errorf("%s: %w", s.name, err)
		}
		p.Statements[s.name] = d
		p.QueryCache[s.name] = after.cache.sub(w.before[i].cache)
	}
	p.LoadAvg = w.load + " → " + loadAvg()
	return p, nil
}

// perSecond returns a counter of server per second.
func (p Phase) perSecond(server, name string) float64 {
	return float64(p.Statements[server][name]) / p.Seconds
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
