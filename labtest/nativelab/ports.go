package nativelab

import (
	"fmt"
	"net"
	"strconv"
)

// Ports are the loopback ports the lab's programs listen on. A zero port is chosen by Start: the compose
// default for user-facing ports when Options.ComposePorts is set, else a free port.
type Ports struct {
	Shop             int // minishop (compose 8080)
	Prometheus       int // Prometheus UI/API (9090)
	Alertmanager     int // Alertmanager UI/API (9093)
	JaegerUI         int // Jaeger query UI/API (16686)
	JaegerQueryGRPC  int // Jaeger gRPC query API
	JaegerOTLPGRPC   int // Jaeger's OTLP receiver, fed by the Collector (compose: jaeger:4317, not published)
	JaegerOTLPHTTP   int // Jaeger's OTLP/HTTP receiver
	JaegerHealth     int // Jaeger healthcheckv2 (/status)
	JaegerMetrics    int // Jaeger's own metrics (scraped by Prometheus)
	CollectorGRPC    int // Collector OTLP gRPC (4317): the shop sends here
	CollectorHTTP    int // Collector OTLP HTTP (4318)
	CollectorHealth  int // Collector health_check
	CollectorMetrics int // Collector's own metrics (scraped by Prometheus)
	SlackMock        int // Slack mock (8070)
	Loki             int // Loki HTTP API and OTLP push (3100)
	LokiGRPC         int // Loki's gRPC port (it talks to itself on it)
	ShopAdmin        int // the shop's fault-injection API (compose: 9091 inside the network, not published)
	Gateway          int // the payment gateway's API (8081)
	GatewayAdmin     int // the payment gateway's fault-injection API (compose: 9092, not published)
}

// ComposePorts are the host ports compose publishes by default, and the .env variables that override them.
// Ports that compose does not publish have no default here and are free ports natively.
var ComposePorts = []struct {
	Env     string
	Default int
	Field   func(*Ports) *int
}{
	{"MINISHOP_PORT", 8080, func(p *Ports) *int { return &p.Shop }},
	{"OTLP_GRPC_PORT", 4317, func(p *Ports) *int { return &p.CollectorGRPC }},
	{"OTLP_HTTP_PORT", 4318, func(p *Ports) *int { return &p.CollectorHTTP }},
	{"PROMETHEUS_PORT", 9090, func(p *Ports) *int { return &p.Prometheus }},
	{"ALERTMANAGER_PORT", 9093, func(p *Ports) *int { return &p.Alertmanager }},
	{"LOKI_PORT", 3100, func(p *Ports) *int { return &p.Loki }},
	{"JAEGER_UI_PORT", 16686, func(p *Ports) *int { return &p.JaegerUI }},
	{"SLACK_MOCK_PORT", 8070, func(p *Ports) *int { return &p.SlackMock }},
	{"PAYMENT_GATEWAY_PORT", 8081, func(p *Ports) *int { return &p.Gateway }},
}

// PortsFromEnv returns the compose default ports, each overridden by its .env variable when set
// (MINISHOP_PORT, OTLP_GRPC_PORT, ...). Other ports stay zero (free).
func PortsFromEnv(getenv func(string) string) (Ports, error) {
	var p Ports
	for _, c := range ComposePorts {
		v := c.Default
		if s := getenv(c.Env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 || n > 65535 {
				return p, fmt.Errorf("%s=%q: want a port number", c.Env, s)
			}
			v = n
		}
		*c.Field(&p) = v
	}
	return p, nil
}

// all lists every port field with its name.
func (p *Ports) all() []struct {
	name string
	ptr  *int
} {
	return []struct {
		name string
		ptr  *int
	}{
		{"shop", &p.Shop}, {"prometheus", &p.Prometheus}, {"alertmanager", &p.Alertmanager},
		{"jaeger ui", &p.JaegerUI}, {"jaeger query grpc", &p.JaegerQueryGRPC}, {"jaeger otlp grpc", &p.JaegerOTLPGRPC},
		{"jaeger otlp http", &p.JaegerOTLPHTTP}, {"jaeger health", &p.JaegerHealth}, {"jaeger metrics", &p.JaegerMetrics},
		{"collector grpc", &p.CollectorGRPC}, {"collector http", &p.CollectorHTTP}, {"collector health", &p.CollectorHealth},
		{"collector metrics", &p.CollectorMetrics}, {"slack mock", &p.SlackMock}, {"loki", &p.Loki},
		{"loki grpc", &p.LokiGRPC}, {"shop admin", &p.ShopAdmin}, {"payment gateway", &p.Gateway},
		{"payment gateway admin", &p.GatewayAdmin},
	}
}

// fill gives every zero port a free loopback port (distinct from the others), and checks that no two
// ports are the same.
func (p *Ports) fill() error {
	used := map[int]string{}
	for _, f := range p.all() {
		if *f.ptr == 0 {
			continue
		}
		if other, dup := used[*f.ptr]; dup {
			return fmt.Errorf("port %d is given to both %s and %s", *f.ptr, other, f.name)
		}
		used[*f.ptr] = f.name
	}
	for _, f := range p.all() {
		for *f.ptr == 0 {
			n, err := freePort()
			if err != nil {
				return err
			}
			if _, dup := used[n]; !dup {
				*f.ptr = n
				used[n] = f.name
			}
		}
	}
	return nil
}

// freePort asks the kernel for a free loopback port. (Another program could take it before ours binds it;
// on a lab machine that is rare, and the program's readiness check then fails with its log.)
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// checkFree fails if something already listens on 127.0.0.1:port, naming what the port was meant for.
func checkFree(name string, port int) error {
	ln, err := net.Listen("tcp", addr(port))
	if err != nil {
		return fmt.Errorf("port %d for %s is busy (%v): stop whatever uses it, or choose another port", port, name, err)
	}
	return ln.Close()
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
