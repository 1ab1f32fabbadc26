package server

import (
	"context"
	"net/http"
	"time"

	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/lb"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slipway_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	m.registry.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// fleetCollector reports each service's task counts and, from the load
// balancer, each target group's healthy targets and traffic over the last
// minute: what ECS users read from CloudWatch's ECS and ALB metrics.
type fleetCollector struct {
	s                                        *Server
	desired, running, healthy, cpu, memory   *prometheus.Desc
	targets, requestRate, errorRate, latency *prometheus.Desc
}

// fleetWindow is the span the target groups' rates are measured over.
const fleetWindow = time.Minute

func newFleetCollector(s *Server) *fleetCollector {
	svc := []string{"app", "environment", "service"}
	tg := append(svc[:3:3], "target_group")
	return &fleetCollector{s: s,
		desired:     prometheus.NewDesc("slipway_service_desired_tasks", "Tasks a service should run.", svc, nil),
		running:     prometheus.NewDesc("slipway_service_running_tasks", "Tasks of a service running, as of the last reconcile.", svc, nil),
		healthy:     prometheus.NewDesc("slipway_service_healthy_tasks", "Tasks of a service passing their health checks, as of the last reconcile.", svc, nil),
		cpu:         prometheus.NewDesc("slipway_service_cpu_utilization_percent", "Mean CPU use of a service's tasks in percent of their reservation, as auto scaling last measured it (services that track CPU or memory).", svc, nil),
		memory:      prometheus.NewDesc("slipway_service_memory_utilization_percent", "Mean memory use of a service's tasks in percent of their reservation, as auto scaling last measured it (services that track CPU or memory).", svc, nil),
		targets:     prometheus.NewDesc("slipway_target_group_healthy_targets", "Targets the load balancer finds healthy.", tg, nil),
		requestRate: prometheus.NewDesc("slipway_target_group_requests_per_second", "Requests the load balancer sent to a target group, per second over the last minute.", tg, nil),
		errorRate:   prometheus.NewDesc("slipway_target_group_5xx_per_second", "5xx answers from a target group, per second over the last minute.", tg, nil),
		latency:     prometheus.NewDesc("slipway_target_group_p99_seconds", "99th percentile of a target group's response time over the last minute.", tg, nil),
	}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.desired, c.running, c.healthy, c.cpu, c.memory, c.targets, c.requestRate, c.errorRate, c.latency} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.s.controlling() {
		// The fleet's figures are the control loops' and the load
		// balancer's: only the server running them exports them, so a
		// scrape of every server counts each service once.
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	svcs, err := c.s.db.ListServices(ctx, "", "")
	if err != nil {
		c.s.log.Warn("metrics: list services", "err", err)
		return
	}
	var lbState lb.State
	for _, svc := range svcs {
		if svc.LoadBalancer != nil {
			// Without the load balancer's answer the task counts still go out.
			lbState, _ = c.s.deploy.Proxy.Client().State(ctx, fleetWindow)
			break
		}
	}
	for _, svc := range svcs {
		labels := []string{svc.App, svc.Env, svc.Name}
		var running, healthy int
		for _, st := range c.s.deploy.Status(svc) {
			running += st.Running
			healthy += st.Healthy
		}
		ch <- prometheus.MustNewConstMetric(c.desired, prometheus.GaugeValue, float64(svc.Desired), labels...)
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(running), labels...)
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, float64(healthy), labels...)
		if u := c.s.deploy.Utilization(svc); u != nil {
			if u.CPUPercent != nil {
				ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.GaugeValue, *u.CPUPercent, labels...)
			}
			if u.MemoryPercent != nil {
				ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, *u.MemoryPercent, labels...)
			}
		}
		if svc.LoadBalancer == nil {
			continue
		}
		for _, group := range []string{"tg1", "tg2"} {
			gs, ok := lbState.TargetGroups[deploy.TargetGroupName(svc, group)]
			if !ok {
				continue
			}
			tl := append(labels[:3:3], group)
			n := 0
			for _, t := range gs.Targets {
				if t.State == lb.StateHealthy {
					n++
				}
			}
			secs := max(gs.Stats.Seconds, 1)
			ch <- prometheus.MustNewConstMetric(c.targets, prometheus.GaugeValue, float64(n), tl...)
			ch <- prometheus.MustNewConstMetric(c.requestRate, prometheus.GaugeValue, float64(gs.Stats.Requests)/secs, tl...)
			ch <- prometheus.MustNewConstMetric(c.errorRate, prometheus.GaugeValue, float64(gs.Stats.Errors)/secs, tl...)
			ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, gs.Stats.P99Ms/1000, tl...)
		}
	}
}
