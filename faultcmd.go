package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// runFault is `minishop fault`: a client of the shop's fault-injection API, so
// that the scenarios work with nothing but the shop's own binary, e.g. inside
// its container: `docker compose exec minishop /minishop fault -payment-failure-rate 0.6`.
// With no flags it prints the current settings.
func runFault(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("minishop fault", flag.ContinueOnError)
	flags.SetOutput(stderr)
	addr := flags.String("admin-addr", or(getenv("MINISHOP_ADMIN_ADDR"), "127.0.0.1:9091"), "the shop's admin address (MINISHOP_ADMIN_ADDR)")
	reset := flags.Bool("reset", false, "back to the settings the shop started with")
	failRate := flags.Float64("payment-failure-rate", 0, "share of payments that fail, 0 to 1")
	failReason := flags.String("payment-failure-reason", "", "every failure this reason (card_declined, insufficient_funds, gateway_timeout); empty: the usual mix")
	payLatency := flags.Duration("payment-latency", 0, "fixed latency of the payment provider")
	payJitter := flags.Duration("payment-jitter", 0, "random extra latency of the payment provider")
	timeoutRate := flags.Float64("payment-timeout-rate", 0, "share of charges the payment gateway makes but answers too late, so the shop retries them (needs the gateway), 0 to 1")
	invDelay := flags.Duration("inventory-delay", 0, "delay added to DeductInventory")
	invJitter := flags.Duration("inventory-jitter", 0, "random extra delay added to DeductInventory")
	oosRate := flags.Float64("out-of-stock-rate", 0, "share of orders refused as out of stock, 0 to 1")
	routes := map[string]latency{}
	flags.Func("route-latency", "ROUTE=FIXED[+JITTER], e.g. /order=200ms+100ms; repeatable", func(v string) error {
		route, spec, ok := strings.Cut(v, "=")
		if !ok {
			return errors.New("want ROUTE=FIXED[+JITTER]")
		}
		fixed, jitter, _ := strings.Cut(spec, "+")
		var l latency
		for _, p := range []struct {
			s   string
			dst *duration
		}{{fixed, &l.Fixed}, {jitter, &l.Jitter}} {
			if p.s == "" {
				continue
			}
			d, err := time.ParseDuration(p.s)
			if err != nil {
				return err
			}
			*p.dst = duration(d)
		}
		routes[route] = l
		return nil
	})
	if err := flags.Parse(args); err != nil {
		return err
	}
	token := getenv("MINISHOP_ADMIN_TOKEN")
	if token == "" {
		return errors.New("MINISHOP_ADMIN_TOKEN is not set: the fault-injection API needs it")
	}

	patch := map[string]any{}
	flags.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "payment-failure-rate":
			patch["payment_failure_rate"] = *failRate
		case "payment-failure-reason":
			patch["payment_failure_reason"] = *failReason
		case "payment-timeout-rate":
			patch["payment_timeout_rate"] = *timeoutRate
		case "out-of-stock-rate":
			patch["out_of_stock_rate"] = *oosRate
		case "route-latency":
			patch["route_latency"] = routes
		}
	})
	nested := func(key, fixedFlag, jitterFlag string, fixed, jitter time.Duration) {
		l := map[string]any{}
		flags.Visit(func(f *flag.Flag) {
			switch f.Name {
			case fixedFlag:
				l["fixed"] = fixed.String()
			case jitterFlag:
				l["jitter"] = jitter.String()
			}
		})
		if len(l) > 0 {
			patch[key] = l
		}
	}
	nested("payment_latency", "payment-latency", "payment-jitter", *payLatency, *payJitter)
	nested("inventory_delay", "inventory-delay", "inventory-jitter", *invDelay, *invJitter)

	method, path := http.MethodGet, "/faults"
	var body io.Reader
	switch {
	case *reset:
		method, path = http.MethodPost, "/faults/reset"
	case len(patch) > 0:
		b, err := json.Marshal(patch)
		if err != nil {
			return err
		}
		method, body = http.MethodPatch, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+dialable(*addr)+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("fault-injection API: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fault-injection API: %s: %s", resp.Status, bytes.TrimSpace(out))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		out = pretty.Bytes()
	}
	_, err = fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(out))
	return err
}

// dialable turns a listen address (":9091", "0.0.0.0:9091") into one to connect to.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
