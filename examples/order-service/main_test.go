package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/store"
)

// TestDefault drives the service over HTTP in memory on SQLite, as
// `go run` starts it.
func TestDefault(t *testing.T) {
	drive(t, config{databaseURL: "sqlite://" + filepath.Join(t.TempDir(), "orders.db"), tablePrefix: "order_service_"}, store.SQLite)
}

// TestRabbitMQPostgres drives it on RabbitMQ and PostgreSQL, with tables
// of its own (dropped afterwards).
func TestRabbitMQPostgres(t *testing.T) {
	drive(t, config{transportURL: testenv.AMQPGroupURL(t, "ordsvc"), databaseURL: testenv.PostgresURL(t), tablePrefix: "ordsvc_" + testenv.Suffix() + "_"}, store.Postgres)
}

// TestMariaDB drives it in memory on MariaDB.
func TestMariaDB(t *testing.T) {
	drive(t, config{databaseURL: testenv.MySQLURL(t), tablePrefix: "ordsvc_" + testenv.Suffix() + "_"}, store.MySQL)
}

// want is an order of the test and the outcome it must reach.
type want struct {
	sku         string
	qty         int
	status      string
	reservation string
	log         []string // sorted
}

func drive(t *testing.T, cfg config, dialect store.Dialect) {
	ctx := context.Background()
	cfg.timeout = 1500 * time.Millisecond
	cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if dialect != store.SQLite { // runs after the App stopped, before close
		t.Cleanup(func() { dropTables(t, svc, dialect, cfg.tablePrefix) })
	}
	if err := svc.app.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, svc.app)
	srv := httptest.NewServer(svc.http)
	t.Cleanup(srv.Close)

	orders := []want{
		{"book", 2, "confirmed", "held", []string{"confirmed", "placed", "stock reserved"}},
		{"book", 3, "confirmed", "held", []string{"confirmed", "placed", "stock reserved"}},
		{"lamp", 5, "cancelled", "refused", []string{"cancelled", "placed", "stock refused"}},                            // only 2 lamps
		{"globe", 1, "cancelled", "released", []string{"cancelled", "placed", "reservation withdrawn", "stock pending"}}, // warehouse offline: times out
		{"lamp", 2, "confirmed", "held", []string{"confirmed", "placed", "stock reserved"}},
	}
	ids := make([]string, len(orders))
	for i, o := range orders {
		var v OrderView
		if code := call(t, srv.URL, "POST", "/orders", placeOrder{SKU: o.sku, Qty: o.qty}, &v); code != http.StatusCreated {
			t.Fatalf("POST %v: %d", o, code)
		}
		if v.Status != "placed" || v.UnitCents == 0 {
			t.Fatalf("POST %v: %+v", o, v)
		}
		ids[i] = v.ID
	}
	if code := call(t, srv.URL, "POST", "/orders", placeOrder{SKU: "chair", Qty: 1}, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("POST of an unknown SKU: %d, want 422 (the quote's remote error)", code)
	}
	if code := call(t, srv.URL, "GET", "/orders/nope", nil, nil); code != http.StatusNotFound {
		t.Errorf("GET of an unknown order: %d, want 404", code)
	}
	for i, o := range orders {
		var v OrderView
		testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("order %d (%s x%d) %s", i, o.sku, o.qty, o.status), func() bool {
			call(t, srv.URL, "GET", "/orders/"+ids[i], nil, &v)
			return v.Status == o.status && v.Reservation == o.reservation
		})
		t.Logf("%s x%d: %s (%s), reservation %s", o.sku, o.qty, v.Status, v.Reason, v.Reservation)
	}
	// Every effect once: wait past the point where a duplicate could
	// still land, then read the log and the stock.
	time.Sleep(cfg.timeout)
	err = svc.inTx(ctx, func(q db) error {
		tb := newTables(cfg.tablePrefix)
		for i, o := range orders {
			log, err := readLog(ctx, q, tb, ids[i])
			if err != nil {
				return err
			}
			if !slices.Equal(log, o.log) {
				t.Errorf("order %d (%s x%d) log %q, want %q", i, o.sku, o.qty, log, o.log)
			}
		}
		for sku, n := range map[string]int{"book": 5, "lamp": 0, "globe": 5} {
			var got int
			if err := q.row(ctx, `SELECT available FROM `+tb.products+` WHERE sku = ?`, sku).Scan(&got); err != nil {
				return err
			}
			if got != n {
				t.Errorf("%s in stock: %d, want %d", sku, got, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readLog(ctx context.Context, q db, tb tables, id string) ([]string, error) {
	var log []string
	for i := 0; ; i++ {
		var e string
		err := q.row(ctx, `SELECT event FROM `+tb.log+` WHERE order_id = ? ORDER BY event LIMIT 1 OFFSET `+fmt.Sprint(i), id).Scan(&e)
		if noRows(err) {
			return log, nil
		}
		if err != nil {
			return nil, err
		}
		log = append(log, e)
	}
}

// call sends an HTTP request and decodes the JSON answer into out.
func call(t *testing.T, base, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// dropTables drops the tables of prefix and their migration records.
func dropTables(t *testing.T, svc *service, dialect store.Dialect, prefix string) {
	ctx := context.Background()
	list := `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE ? ORDER BY 1 LIMIT 1 OFFSET `
	if dialect == store.MySQL {
		list = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE ? ORDER BY 1 LIMIT 1 OFFSET `
	}
	var names []string
	err := svc.inTx(ctx, func(q db) error {
		for i := 0; ; i++ {
			var n string
			err := q.row(ctx, list+fmt.Sprint(i), prefix+"%").Scan(&n)
			if noRows(err) {
				return nil
			}
			if err != nil {
				return err
			}
			names = append(names, n)
		}
	})
	if err == nil && len(names) > 0 {
		err = svc.inTx(ctx, func(q db) error {
			_, err := q.exec(ctx, `DROP TABLE IF EXISTS `+strings.Join(names, ", "))
			return err
		})
	}
	if err == nil {
		err = svc.inTx(ctx, func(q db) error {
			_, err := q.exec(ctx, `DELETE FROM `+store.MigrationTable+` WHERE component LIKE ?`, "%"+prefix+"%")
			return err
		})
	}
	if err != nil {
		t.Errorf("drop the tables of %s: %v", prefix, err)
	}
}
