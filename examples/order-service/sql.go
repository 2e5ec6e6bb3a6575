package main

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// db is the business SQL's view of a transaction, whatever the driver:
// queries are written with ? placeholders.
type db interface {
	exec(ctx context.Context, q string, args ...any) (int64, error)
	row(ctx context.Context, q string, args ...any) interface{ Scan(dest ...any) error }
}

// pgxDB is a PostgreSQL transaction (pgx): ? becomes $1, $2 ...
type pgxDB struct{ tx pgx.Tx }

func (d pgxDB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := d.tx.Exec(ctx, dollars(q), args...)
	return tag.RowsAffected(), err
}

func (d pgxDB) row(ctx context.Context, q string, args ...any) interface{ Scan(dest ...any) error } {
	return d.tx.QueryRow(ctx, dollars(q), args...)
}

// stdDB is a MySQL/MariaDB or SQLite transaction (database/sql).
type stdDB struct{ tx *sql.Tx }

func (d stdDB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := d.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (d stdDB) row(ctx context.Context, q string, args ...any) interface{ Scan(dest ...any) error } {
	return d.tx.QueryRowContext(ctx, q, args...)
}

// dollars numbers the ? placeholders of q for PostgreSQL.
func dollars(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// noRows reports whether err is "no row" of either driver family.
func noRows(err error) bool { return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) }

// tables names the business tables (the App's table prefix followed by
// orders, products, reservations, order_log).
type tables struct{ orders, products, reservations, log string }

func newTables(prefix string) tables {
	return tables{prefix + "orders", prefix + "products", prefix + "reservations", prefix + "order_log"}
}

// migrations are the business schema, the same on the three databases;
// the seed gives three products: book (10 in stock), lamp (2) and globe,
// whose warehouse is offline (its reservations never get an answer).
func (t tables) migrations() []store.Migration {
	return []store.Migration{
		{Version: 1, Name: "orders", SQL: `CREATE TABLE ` + t.orders + ` (id VARCHAR(64) PRIMARY KEY, sku VARCHAR(64) NOT NULL,
	qty INT NOT NULL, unit_cents BIGINT NOT NULL, status VARCHAR(16) NOT NULL, reason VARCHAR(255) NOT NULL)`},
		{Version: 2, Name: "products", SQL: `CREATE TABLE ` + t.products + ` (sku VARCHAR(64) PRIMARY KEY,
	unit_cents BIGINT NOT NULL, available INT NOT NULL, online INT NOT NULL)`},
		{Version: 3, Name: "reservations", SQL: `CREATE TABLE ` + t.reservations + ` (order_id VARCHAR(64) PRIMARY KEY,
	sku VARCHAR(64) NOT NULL, qty INT NOT NULL, status VARCHAR(16) NOT NULL)`},
		{Version: 4, Name: "order log", SQL: `CREATE TABLE ` + t.log + ` (order_id VARCHAR(64) NOT NULL, event VARCHAR(64) NOT NULL)`},
		{Version: 5, Name: "seed products", SQL: `INSERT INTO ` + t.products + ` (sku, unit_cents, available, online)
	VALUES ('book', 1250, 10, 1), ('lamp', 4900, 2, 1), ('globe', 8900, 5, 0)`},
	}
}

// note appends an entry to the order's log. The log has no unique key:
// an effect applied twice would show twice.
func (t tables) note(ctx context.Context, tx db, orderID, event string) error {
	_, err := tx.exec(ctx, `INSERT INTO `+t.log+` (order_id, event) VALUES (?, ?)`, orderID, event)
	return err
}

// insertOrder writes a placed order.
func (t tables) insertOrder(ctx context.Context, tx db, id, sku string, qty int, unit int64) error {
	if _, err := tx.exec(ctx, `INSERT INTO `+t.orders+` (id, sku, qty, unit_cents, status, reason) VALUES (?, ?, ?, ?, 'placed', '')`,
		id, sku, qty, unit); err != nil {
		return err
	}
	return t.note(ctx, tx, id, "placed")
}

// setStatus moves a placed order to status.
func (t tables) setStatus(ctx context.Context, tx db, id, status, reason string) error {
	n, err := tx.exec(ctx, `UPDATE `+t.orders+` SET status = ?, reason = ? WHERE id = ? AND status = 'placed'`, status, reason, id)
	if err != nil || n == 0 {
		return err
	}
	return t.note(ctx, tx, id, status)
}

// price returns the unit price of sku.
func (t tables) price(ctx context.Context, tx db, sku string) (int64, bool, error) {
	var unit int64
	err := tx.row(ctx, `SELECT unit_cents FROM `+t.products+` WHERE sku = ?`, sku).Scan(&unit)
	if noRows(err) {
		return 0, false, nil
	}
	return unit, err == nil, err
}

// reserve holds the stock of an order and returns the answer to publish:
// StockReserved, StockRefused, or nil while the product's warehouse is
// offline (the reservation stays pending) or when the order's reservation
// was already decided (a release came first).
func (t tables) reserve(ctx context.Context, tx db, m ReserveStock) (answer router.Message, err error) {
	var status string
	switch err := tx.row(ctx, `SELECT status FROM `+t.reservations+` WHERE order_id = ?`, m.OrderID).Scan(&status); {
	case err == nil:
		return nil, nil
	case !noRows(err):
		return nil, err
	}
	var online int
	if err := tx.row(ctx, `SELECT online FROM `+t.products+` WHERE sku = ?`, m.SKU).Scan(&online); err != nil {
		return nil, err
	}
	status, event := "pending", "stock pending"
	if online == 1 {
		n, err := tx.exec(ctx, `UPDATE `+t.products+` SET available = available - ? WHERE sku = ? AND available >= ?`, m.Qty, m.SKU, m.Qty)
		if err != nil {
			return nil, err
		}
		status, event, answer = "refused", "stock refused", StockRefused{OrderID: m.OrderID}
		if n == 1 {
			status, event, answer = "held", "stock reserved", StockReserved{OrderID: m.OrderID}
		}
	}
	if _, err := tx.exec(ctx, `INSERT INTO `+t.reservations+` (order_id, sku, qty, status) VALUES (?, ?, ?, ?)`,
		m.OrderID, m.SKU, m.Qty, status); err != nil {
		return nil, err
	}
	return answer, t.note(ctx, tx, m.OrderID, event)
}

// release gives back held stock, withdraws a pending reservation, and
// leaves a released row for an order whose reservation has not arrived
// yet, so that it is not made afterwards.
func (t tables) release(ctx context.Context, tx db, orderID string) error {
	n, err := tx.exec(ctx, `UPDATE `+t.reservations+` SET status = 'released' WHERE order_id = ? AND status = 'held'`, orderID)
	if err != nil {
		return err
	}
	if n == 1 {
		if _, err := tx.exec(ctx, `UPDATE `+t.products+` SET available = available + (SELECT qty FROM `+t.reservations+
			` WHERE order_id = ?) WHERE sku = (SELECT sku FROM `+t.reservations+` WHERE order_id = ?)`, orderID, orderID); err != nil {
			return err
		}
		return t.note(ctx, tx, orderID, "stock released")
	}
	if n, err = tx.exec(ctx, `UPDATE `+t.reservations+` SET status = 'released' WHERE order_id = ? AND status = 'pending'`, orderID); err != nil || n == 1 {
		if err == nil {
			err = t.note(ctx, tx, orderID, "reservation withdrawn")
		}
		return err
	}
	var count int
	if err := tx.row(ctx, `SELECT COUNT(*) FROM `+t.reservations+` WHERE order_id = ?`, orderID).Scan(&count); err != nil || count > 0 {
		return err
	}
	_, err = tx.exec(ctx, `INSERT INTO `+t.reservations+` (order_id, sku, qty, status) VALUES (?, '', 0, 'released')`, orderID)
	return err
}

// order reads an order and its reservation.
func (t tables) order(ctx context.Context, tx db, id string) (OrderView, error) {
	v := OrderView{ID: id}
	err := tx.row(ctx, `SELECT o.sku, o.qty, o.unit_cents, o.status, o.reason, COALESCE(r.status, '') FROM `+t.orders+` o LEFT JOIN `+
		t.reservations+` r ON r.order_id = o.id WHERE o.id = ?`, id).Scan(&v.SKU, &v.Qty, &v.UnitCents, &v.Status, &v.Reason, &v.Reservation)
	if noRows(err) {
		return v, errNotFound
	}
	return v, err
}
