package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/whycache/whycache"
)

// metrics are the Prometheus series of the follow daemon, all labelled
// with the state file. They are updated from Follow's OnPoll (one
// goroutine) and read by the HTTP handler; the prometheus types are safe
// for that.
type metrics struct {
	reg        *prometheus.Registry
	updateID   prometheus.Gauge
	latestID   prometheus.Gauge
	lagRecords prometheus.Gauge
	lagSeconds prometheus.Gauge
	readLag    prometheus.Gauge
	keys       prometheus.Gauge
	dataBytes  prometheus.Gauge
	fileBytes  prometheus.Gauge
	rebuilds   prometheus.Gauge
	leader     prometheus.Gauge
	applied    prometheus.Counter
	errors     prometheus.Counter
}

// newMetrics registers the series, and the Go runtime and process
// collectors, in a new registry.
func newMetrics(statePath string) *metrics {
	labels := prometheus.Labels{"state": statePath}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	m := &metrics{
		reg:        prometheus.NewRegistry(),
		updateID:   gauge("whycache_update_id", "Id of the last log record applied to the state in order."),
		latestID:   gauge("whycache_latest_id", "Latest id in the log, as the leader last read it (0 on a standby, which does not ask the log)."),
		lagRecords: gauge("whycache_lag_records", "Ids the state is behind the log's latest id (leader only)."),
		lagSeconds: gauge("whycache_lag_seconds", "Seconds the state is behind the primary (leader only): the larger of whycache_read_lag_seconds and, while the state is behind the log it reads, the seconds since it last applied records."),
		readLag:    gauge("whycache_read_lag_seconds", "Seconds the log as read (a --read-store replica) is behind its primary: the replica's clock less the last heartbeat it holds (follow --heartbeat on one machine writes them); 0 without heartbeats (leader only)."),
		keys:       gauge("whycache_keys", "Live keys in the state."),
		dataBytes:  gauge("whycache_data_bytes", "Total bytes of the live keys and values."),
		fileBytes:  gauge("whycache_state_file_bytes", "Size of the state file on disk."),
		rebuilds:   gauge("whycache_state_rebuilds", "Times the state was rebuilt from the whole log because it could no longer follow it (a log restored or failed over, compaction past it, another log), by any process; kept in the state file. An increase means the log went backwards or changed: see 'whycache stats'."),
		leader:     gauge("whycache_leader", "1 when this process holds the follow lock and polls the log, 0 on a standby."),
		applied:    counter("whycache_applied_records_total", "Log records applied by this process's polls (rate() gives the apply rate)."),
		errors:     counter("whycache_update_errors_total", "Failed polls of the log."),
	}
	m.reg.MustRegister(m.updateID, m.latestID, m.lagRecords, m.lagSeconds, m.readLag, m.keys, m.dataBytes,
		m.fileBytes, m.rebuilds, m.leader, m.applied, m.errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records one poll (Follow's OnPoll).
func (m *metrics) observe(st whycache.FollowStats, err error) {
	m.updateID.Set(float64(st.UpdateID))
	m.keys.Set(float64(st.Keys))
	m.dataBytes.Set(float64(st.DataBytes))
	m.fileBytes.Set(float64(st.FileSize))
	m.rebuilds.Set(float64(st.Rebuilds))
	m.applied.Add(float64(st.Applied))
	if err != nil {
		m.errors.Inc()
	}
	if !st.Leader {
		m.leader.Set(0)
		m.latestID.Set(0)
		m.lagRecords.Set(0)
		m.lagSeconds.Set(0)
		m.readLag.Set(0)
		return
	}
	m.leader.Set(1)
	if err == nil {
		m.latestID.Set(float64(st.LatestID))
		m.lagRecords.Set(float64(st.LagRecords))
		m.lagSeconds.Set(st.LagSeconds)
		m.readLag.Set(st.ReadLagSeconds)
	}
}

// handler serves the registry in the Prometheus exposition formats.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
