// Command observability shows Hexeract's traces and metrics: spans go to
// standard output through the OpenTelemetry stdout exporter, and metrics
// are served in the Prometheus text format on /metrics through the
// OpenTelemetry Prometheus exporter. It publishes a few events on the
// in-memory transport, prints the spans, then scrapes its own /metrics once
// and prints Hexeract's series. It needs no service:
//
//	go run ./examples/observability                  # print and exit
//	go run ./examples/observability -serve :9464     # keep serving /metrics
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/middleware"
)

// OrderPlaced is the event the example publishes.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the stable wire name of the event.
func (OrderPlaced) MessageType() string { return "orders.placed" }

// OrderConfirmed is published by the OrderPlaced handler, in the same trace.
type OrderConfirmed struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the stable wire name of the event.
func (OrderConfirmed) MessageType() string { return "orders.confirmed" }

func main() {
	serve := flag.String("serve", "", "keep serving /metrics on this address (for example :9464) until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *serve); err != nil {
		log.Fatal(err)
	}
}

// run publishes three orders, writes the spans and then Hexeract's metric
// series (scraped from its own /metrics) to out. With serve set it keeps
// serving /metrics there until ctx ends.
func run(ctx context.Context, out io.Writer, serve string) error {
	// Traces: one span per line on out. In production use a batching
	// OTLP exporter instead (see docs/observability.md).
	spans, err := stdouttrace.New(stdouttrace.WithWriter(out))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	// Metrics: the Prometheus exporter is a reader of the meter provider;
	// it registers its collector with a Prometheus registry, which
	// promhttp serves.
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = mp.Shutdown(context.Background()) }()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := hexeract.New(hexeract.WithLogger(logger),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Tracing.TracerProvider = tp
			c.Metrics.MeterProvider = mp
		}))
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Printf("close the App: %v", err)
		}
	}()

	orders := []string{"o-1", "o-2", "o-3"}
	var done sync.WaitGroup
	done.Add(len(orders))
	if err := hexeract.HandleFunc(app, func(ctx context.Context, e OrderPlaced) error {
		return app.Publish(ctx, OrderConfirmed(e))
	}); err != nil {
		return err
	}
	if err := hexeract.HandleFunc(app, func(ctx context.Context, e OrderConfirmed) error {
		done.Done()
		return nil
	}); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	select {
	case <-app.Running():
	case err := <-runErr:
		return err
	}
	tracer := tp.Tracer("examples/observability")
	for _, id := range orders {
		ctx, span := tracer.Start(ctx, "place order")
		err := app.Publish(ctx, OrderPlaced{OrderID: id})
		span.End()
		if err != nil {
			return err
		}
	}
	waited := make(chan struct{})
	go func() { done.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		return errors.New("the orders were not confirmed within 10s")
	}
	// Stop the App: its last spans end and its last measurements are
	// recorded when the handlers return, after the confirmation above.
	cancel()
	if err := <-runErr; err != nil {
		return err
	}

	addr := serve
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		if err := srv.Close(); err != nil {
			log.Printf("close the metrics server: %v", err)
		}
	}()

	if err := printSeries(out, "http://"+ln.Addr().String()+"/metrics"); err != nil {
		return err
	}
	if serve != "" {
		fmt.Fprintf(out, "serving /metrics on %s; interrupt to stop\n", ln.Addr())
		<-ctx.Done()
	}
	return nil
}

// printSeries scrapes url and writes the series of Hexeract's metrics
// (histogram buckets left out, for brevity).
func printSeries(out io.Writer, url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read to the end below: a close error loses nothing
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if (strings.HasPrefix(line, "messaging_") || strings.HasPrefix(line, "hexeract_")) && !strings.Contains(line, "_bucket{") {
			fmt.Fprintln(out, line)
		}
	}
	return sc.Err()
}
