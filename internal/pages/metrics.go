//go:build linux

package pages

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/http-status/http_status/cache"
	"github.com/http-status/http_status/httpd"
	"github.com/http-status/http_status/internal/agent"
)

// WatcherStats are the watcher's counters as the metrics see them. httpd
// does not import the watcher: cmd passes a function that copies them.
type WatcherStats struct {
	Events, AddrUpdates, Rescans, Overflows, Resubscribes, Publishes, Transitions uint64
	LastRescan                                                                    time.Duration
}

// MetricsOptions configure [Metrics].
type MetricsOptions struct {
	// Handler supplies the HTTP answers-by-code counters, the fast
	// engine's connection counters and the store.
	Handler *httpd.Handler
	// Agent returns the agent responder's counters; nil: no agent.
	Agent func() agent.Stats
	// Watcher returns the watcher's counters; nil leaves them out.
	Watcher func() WatcherStats
	// HeartbeatAge is how long ago the watcher loop last turned
	// (monotonic); nil leaves it out.
	HeartbeatAge func() time.Duration
	// Now is the clock used for expiries; time.Now when nil.
	Now func() time.Time
	// NeedConns tells the connection sampler that a scrape needs counts
	// (see [Options.NeedConns]); nil: no connection gauges.
	NeedConns func() <-chan struct{}
	// Stopping says what the daemon does while it stops ("" while it
	// runs; see [Options.Stopping]); nil leaves http_status_stopping out.
	Stopping func() string
	// Stale is [Options.Stale]: while it says stale, /status answers every
	// service down and the service gauges say down too. Nil: never.
	Stale func() (age time.Duration, stale bool)
}

// Metrics is the daemon's Prometheus registry and /metrics handler. It uses
// its own registry, not the global one.
//
// # Cost
//
// Request counting costs the /status path one atomic add ([httpd.CodeCounts]);
// everything else is read from the snapshot and the watcher when scraped.
// The per-service family http_status_service_state has one series per flag
// file, labelled with the current state only, so a state change replaces a
// series rather than adding one: 10,000 flags are 10,000 series, and the
// whole scrape is then about 0.6 MB.
type Metrics struct {
	opts           MetricsOptions
	reg            *prometheus.Registry
	publishLatency prometheus.Histogram
	probeDuration  *prometheus.HistogramVec
	handler        http.Handler
}

const ns = "http_status"

// NewMetrics builds the registry: the daemon's collector, the
// event-to-publish latency histogram, the probe duration histogram (empty
// until probes report), and the Go and process collectors.
func NewMetrics(opts MetricsOptions) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{opts: opts, reg: prometheus.NewRegistry()}
	m.publishLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "publish_latency_seconds",
		Help: "Time from the watcher waking up on an event (inotify, netlink, timer) to the new snapshot being published.",
		// 10 µs .. ~1.3 s
		Buckets: prometheus.ExponentialBuckets(10e-6, 2, 18),
	})
	m.probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "probe_duration_seconds",
		Help:    "Duration of service probes, by service and result.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"service", "result"})
	m.reg.MustRegister(
		&daemonCollector{opts: opts},
		m.publishLatency,
		m.probeDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A scrape walks every service; two at once is plenty.
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	})
	return m
}

// ObservePublish records one event-to-publish latency; the watcher calls it
// through its OnPublish option.
func (m *Metrics) ObservePublish(d time.Duration) { m.publishLatency.Observe(d.Seconds()) }

// ObserveProbe records one probe run. It is the hook for the probes: no
// series exist until a probe reports.
func (m *Metrics) ObserveProbe(service, result string, d time.Duration) {
	m.probeDuration.WithLabelValues(service, result).Observe(d.Seconds())
}

// ForgetProbe drops the probe-duration series of a service that no longer
// has probes (a reload removed them), so that /metrics holds the services
// probed now, not every one ever probed since the start.
func (m *Metrics) ForgetProbe(service string) {
	m.probeDuration.DeletePartialMatch(prometheus.Labels{"service": service})
}

// Mount mounts /metrics on mux (the check port's counters stay those of
// [MetricsOptions.Handler] wherever it is mounted).
func (m *Metrics) Mount(mux httpd.Mux) { mux.Handle(httpd.PathMetrics, m) }

func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !readOnlyMethod(w, r) {
		return
	}
	waitConns(m.opts.Handler.Checker().Store(), m.opts.NeedConns)
	m.handler.ServeHTTP(w, r)
}

var (
	descRequests     = prometheus.NewDesc(ns+"_requests_total", "HTTP health-check answers by status code (/status, OPTIONS, and 404/405 for unknown paths or methods; not the pages or /metrics; not the agent port).", []string{"code"}, nil)
	descHTTPConns    = prometheus.NewDesc(ns+"_http_connections", "Connections the HTTP port holds now (with the fast engine, those handed over to net/http included).", nil, nil)
	descHTTPAccepted = prometheus.NewDesc(ns+"_http_connections_accepted_total", "Connections the HTTP port accepted.", nil, nil)
	descHTTPOver     = prometheus.NewDesc(ns+"_http_connections_overloaded_total", "Connections answered 503 at accept: over the connection limit or out of file descriptors.", nil, nil)
	descAgentReplies = prometheus.NewDesc(ns+"_agent_replies_total", "Agent-check answers by what they tell HAProxy (up, drain, maint, down; bad requests count as down and in agent_bad_requests_total).", []string{"reply"}, nil)
	descAgentBad     = prometheus.NewDesc(ns+"_agent_bad_requests_total", "Agent-check lines not understood.", nil, nil)
	descAgentConns   = prometheus.NewDesc(ns+"_agent_connections", "Agent-check connections open now.", nil, nil)
	descAgentOver    = prometheus.NewDesc(ns+"_agent_connections_overloaded_total", "Agent-check connections closed at accept: over the connection limit or out of file descriptors.", nil, nil)
	descServiceState = prometheus.NewDesc(ns+"_service_state", "1 for each flag file, labelled with its effective state (flag and probes: what /status answers without VIPs).", []string{"service", "state"}, nil)
	descServiceWt    = prometheus.NewDesc(ns+"_service_weight_percent", "Weight named in a flag file, for flags that name one.", []string{"service"}, nil)
	descProbeOK      = prometheus.NewDesc(ns+"_service_probe_ok", "1 when every active probe of a service passes, 0 when one fails (services with probes only).", []string{"service"}, nil)
	descServices     = prometheus.NewDesc(ns+"_services", "Flag files by effective state.", []string{"state"}, nil)
	descVIPs         = prometheus.NewDesc(ns+"_vips", "Addresses configured on the host.", nil, nil)
	descGeneration   = prometheus.NewDesc(ns+"_snapshot_generation", "Generation of the current snapshot (counts publications).", nil, nil)
	descBuilt        = prometheus.NewDesc(ns+"_snapshot_built_timestamp_seconds", "When the current snapshot was published.", nil, nil)
	descDirOK        = prometheus.NewDesc(ns+"_dir_ok", "1 when the status directory is present and watched.", nil, nil)
	descVIPsOK       = prometheus.NewDesc(ns+"_vips_ok", "1 when the VIP list is current (netlink subscription up, or VIP tracking off).", nil, nil)
	descStale        = prometheus.NewDesc(ns+"_stale", "1 while the watcher loop has stalled for longer than --stale-after: /status and the agent answer every service down (and http_status_service_state says so).", nil, nil)
	descStopping     = prometheus.NewDesc(ns+"_stopping", "1 once the daemon is stopping: in a lameduck the agent answers drain for services that are up, whatever http_status_service_state says.", nil, nil)
	descHeartbeat    = prometheus.NewDesc(ns+"_watcher_heartbeat_age_seconds", "Time since the watcher loop last turned (it turns at least every second).", nil, nil)
	descTransitions  = prometheus.NewDesc(ns+"_transitions_total", "Flag changes published: added, removed, changed, or an override expired.", nil, nil)
	descEvents       = prometheus.NewDesc(ns+"_watcher_events_total", "inotify events handled.", nil, nil)
	descAddrUpdates  = prometheus.NewDesc(ns+"_watcher_addr_updates_total", "netlink address updates handled.", nil, nil)
	descRescans      = prometheus.NewDesc(ns+"_watcher_rescans_total", "Full rescans of the status directory.", nil, nil)
	descOverflows    = prometheus.NewDesc(ns+"_watcher_inotify_overflows_total", "inotify queue overflows (each causes a full rescan).", nil, nil)
	descResubscribes = prometheus.NewDesc(ns+"_watcher_netlink_resubscribes_total", "netlink address subscriptions re-established after a failure.", nil, nil)
	descPublishes    = prometheus.NewDesc(ns+"_watcher_publishes_total", "Snapshots published.", nil, nil)
	descLastRescan   = prometheus.NewDesc(ns+"_watcher_last_rescan_duration_seconds", "Duration of the last full rescan.", nil, nil)
	descConns        = prometheus.NewDesc(ns+"_service_connections", "Open TCP connections (ESTABLISHED or CLOSE-WAIT) on the service's port (conn= or conn_port, else the port in its name), while counts are sampled.", []string{"service"}, nil)
	descConnsLive    = prometheus.NewDesc(ns+"_connections_sampling", "1 while connection counts are sampled (something needs them), 0 otherwise.", nil, nil)
)

// daemonCollector reads everything at scrape time.
type daemonCollector struct{ opts MetricsOptions }

func (c *daemonCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descServiceState, descServiceWt, descProbeOK, descServices, descVIPs, descGeneration, descBuilt, descDirOK, descVIPsOK, descConns, descConnsLive} {
		ch <- d
	}
	if c.opts.HeartbeatAge != nil {
		ch <- descHeartbeat
	}
	if c.opts.Stopping != nil {
		ch <- descStopping
	}
	if c.opts.Stale != nil {
		ch <- descStale
	}
	ch <- descHTTPConns
	ch <- descHTTPAccepted
	ch <- descHTTPOver
	if c.opts.Agent != nil {
		for _, d := range []*prometheus.Desc{descAgentReplies, descAgentBad, descAgentConns, descAgentOver} {
			ch <- d
		}
	}
	if c.opts.Watcher != nil {
		for _, d := range []*prometheus.Desc{descTransitions, descEvents, descAddrUpdates, descRescans, descOverflows, descResubscribes, descPublishes, descLastRescan} {
			ch <- d
		}
	}
}

var codeLabels = func() []string {
	l := make([]string, 600)
	l[0] = "other"
	for i := 100; i < len(l); i++ {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func (c *daemonCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.opts.Handler
	h.Codes().Each(func(code int, n uint64) {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), codeLabels[code])
	})
	es := h.EngineStats()
	ch <- prometheus.MustNewConstMetric(descHTTPConns, prometheus.GaugeValue, float64(es.Open))
	ch <- prometheus.MustNewConstMetric(descHTTPAccepted, prometheus.CounterValue, float64(es.Accepted))
	ch <- prometheus.MustNewConstMetric(descHTTPOver, prometheus.CounterValue, float64(es.Overloaded))
	if c.opts.Agent != nil {
		as := c.opts.Agent()
		for _, w := range []string{"up", "drain", "maint", "down"} {
			ch <- prometheus.MustNewConstMetric(descAgentReplies, prometheus.CounterValue, float64(as.Replies[w]), w)
		}
		ch <- prometheus.MustNewConstMetric(descAgentBad, prometheus.CounterValue, float64(as.BadRequests))
		ch <- prometheus.MustNewConstMetric(descAgentConns, prometheus.GaugeValue, float64(as.Open))
		ch <- prometheus.MustNewConstMetric(descAgentOver, prometheus.CounterValue, float64(as.Overloaded))
	}
	s := h.Checker().Store().Load()
	now := c.opts.Now()
	byState := map[cache.State]int{cache.Up: 0, cache.Drain: 0, cache.Maint: 0, cache.Down: 0}
	stale := false
	if c.opts.Stale != nil {
		_, stale = c.opts.Stale()
	}
	if c.opts.Stale != nil {
		ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, b2f(stale))
	}
	for name := range s.Services() {
		eff, _ := s.Effective(name, now) // flag and probes, as /status answers
		if stale {
			eff.State = cache.Down // as /status answers while the loop is stalled
		}
		byState[eff.State]++
		ch <- prometheus.MustNewConstMetric(descServiceState, prometheus.GaugeValue, 1, name, eff.State.String())
		if eff.Weight != cache.NoWeight {
			ch <- prometheus.MustNewConstMetric(descServiceWt, prometheus.GaugeValue, float64(eff.Weight), name)
		}
		if n, ok := s.Conns(name); ok {
			ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(n), name)
		}
	}
	ch <- prometheus.MustNewConstMetric(descConnsLive, prometheus.GaugeValue, b2f(s.ConnCounts().Live))
	for name, p := range s.Probes() {
		ch <- prometheus.MustNewConstMetric(descProbeOK, prometheus.GaugeValue, b2f(p.OK), name)
	}
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(descServices, prometheus.GaugeValue, float64(n), st.String())
	}
	ch <- prometheus.MustNewConstMetric(descVIPs, prometheus.GaugeValue, float64(s.NumVIPs()))
	ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(s.Generation()))
	if !s.Built().IsZero() {
		ch <- prometheus.MustNewConstMetric(descBuilt, prometheus.GaugeValue, float64(s.Built().UnixNano())/1e9)
	}
	ch <- prometheus.MustNewConstMetric(descDirOK, prometheus.GaugeValue, b2f(s.DirOK()))
	ch <- prometheus.MustNewConstMetric(descVIPsOK, prometheus.GaugeValue, b2f(s.VIPsOK()))
	if c.opts.HeartbeatAge != nil {
		ch <- prometheus.MustNewConstMetric(descHeartbeat, prometheus.GaugeValue, c.opts.HeartbeatAge().Seconds())
	}
	if c.opts.Stopping != nil {
		ch <- prometheus.MustNewConstMetric(descStopping, prometheus.GaugeValue, b2f(c.opts.Stopping() != ""))
	}
	if c.opts.Watcher != nil {
		ws := c.opts.Watcher()
		for _, m := range []struct {
			d *prometheus.Desc
			v uint64
		}{
			{descTransitions, ws.Transitions}, {descEvents, ws.Events}, {descAddrUpdates, ws.AddrUpdates},
			{descRescans, ws.Rescans}, {descOverflows, ws.Overflows}, {descResubscribes, ws.Resubscribes},
			{descPublishes, ws.Publishes},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v))
		}
		ch <- prometheus.MustNewConstMetric(descLastRescan, prometheus.GaugeValue, ws.LastRescan.Seconds())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
