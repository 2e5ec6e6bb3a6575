package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/saga"
)

// Messages. OrderPlaced is the event the HTTP handler commits with the
// order row; the others are the saga's commands and the stock service's
// answers; QuotePrice/PriceQuote are the request/reply pair.

// OrderPlaced: an order row was committed.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	SKU     string `json:"sku"`
	Qty     int    `json:"qty"`
}

// MessageType returns the wire name.
func (OrderPlaced) MessageType() string { return "orders.placed" }

// ReserveStock asks the stock service to hold qty items of sku.
type ReserveStock struct {
	OrderID string `json:"order_id"`
	SKU     string `json:"sku"`
	Qty     int    `json:"qty"`
}

// MessageType returns the wire name.
func (ReserveStock) MessageType() string { return "stock.reserve" }

// StockReserved: the items are held for the order.
type StockReserved struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the wire name.
func (StockReserved) MessageType() string { return "stock.reserved" }

// StockRefused: not enough items.
type StockRefused struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the wire name.
func (StockRefused) MessageType() string { return "stock.refused" }

// ReleaseStock undoes a reservation (the saga's compensation).
type ReleaseStock struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the wire name.
func (ReleaseStock) MessageType() string { return "stock.release" }

// ConfirmOrder marks the order confirmed.
type ConfirmOrder struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the wire name.
func (ConfirmOrder) MessageType() string { return "orders.confirm" }

// CancelOrder marks the order cancelled.
type CancelOrder struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

// MessageType returns the wire name.
func (CancelOrder) MessageType() string { return "orders.cancel" }

// ReservationTimedOut is the saga's deadline for the stock reservation.
type ReservationTimedOut struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the wire name.
func (ReservationTimedOut) MessageType() string { return "orders.reservation_timed_out" }

// QuotePrice asks the pricing service for the price of qty items of sku.
type QuotePrice struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// MessageType returns the wire name.
func (QuotePrice) MessageType() string { return "pricing.quote" }

// PriceQuote is the pricing service's answer.
type PriceQuote struct {
	UnitCents  int64 `json:"unit_cents"`
	TotalCents int64 `json:"total_cents"`
}

// MessageType returns the wire name.
func (PriceQuote) MessageType() string { return "pricing.quoted" }

// GetOrder is the mediator query behind GET /orders/{id}.
type GetOrder struct{ ID string }

// OrderView is what GET /orders/{id} returns.
type OrderView struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Qty         int    `json:"qty"`
	UnitCents   int64  `json:"unit_cents"`
	Status      string `json:"status"` // placed, confirmed, cancelled
	Reason      string `json:"reason,omitempty"`
	Reservation string `json:"reservation,omitempty"` // held, refused, pending, released
}

// errUnknownSKU is the pricing service's remote error for a product it
// does not sell.
var errUnknownSKU = reqreply.NewError("unknown_sku", "no such product")

// errNotFound is the query's error for an unknown order.
var errNotFound = errors.New("order not found")

// OrderState is the saga's state.
type OrderState struct {
	ID  string `json:"id"`
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// orderSaga reserves the stock of a placed order within timeout, then
// confirms the order; a refused or late reservation cancels the order and
// releases whatever the stock service holds or will hold for it.
func orderSaga(timeout time.Duration) *saga.Definition[OrderState] {
	def := saga.Define[OrderState]("orders")
	saga.StartedBy(def, func(e OrderPlaced) string { return e.OrderID },
		func(c *saga.Context[OrderState], s *OrderState, e OrderPlaced) error {
			*s = OrderState{ID: e.OrderID, SKU: e.SKU, Qty: e.Qty}
			c.Send(ReserveStock(e))
			// Registered with the request, not with its answer: a
			// reservation that is still pending when the saga fails is
			// withdrawn too.
			c.Compensate(ReleaseStock{OrderID: e.OrderID})
			c.Timeout(timeout, ReservationTimedOut{OrderID: e.OrderID})
			return nil
		})
	saga.Handles(def, func(e StockReserved) string { return e.OrderID },
		func(c *saga.Context[OrderState], s *OrderState, _ StockReserved) error {
			c.Send(ConfirmOrder{OrderID: s.ID})
			c.Complete() // cancels the deadline
			return nil
		})
	saga.Handles(def, func(e StockRefused) string { return e.OrderID },
		func(c *saga.Context[OrderState], s *OrderState, _ StockRefused) error {
			c.Send(CancelOrder{OrderID: s.ID, Reason: "out of stock"})
			c.Fail(errors.New("stock refused")) // runs ReleaseStock
			return nil
		})
	saga.OnTimeout(def, func(c *saga.Context[OrderState], s *OrderState, _ ReservationTimedOut) error {
		c.Send(CancelOrder{OrderID: s.ID, Reason: "no stock reservation within " + timeout.String()})
		c.Fail(errors.New("reservation timed out")) // runs ReleaseStock
		return nil
	})
	return def
}

// handlers adds the stock, order and pricing services' handlers. Each runs
// behind the App's inbox, in a transaction that TxFrom returns; what it
// publishes goes to the outbox in that transaction.
func handlers[TTx any](app *hexeract.App, sqlOf func(TTx) db, t tables) error {
	tx := func(ctx context.Context) db {
		t, _ := hexeract.TxFrom[TTx](ctx, app)
		return sqlOf(t)
	}
	return errors.Join(
		hexeract.HandleFunc(app, func(ctx context.Context, m ReserveStock) error {
			answer, err := t.reserve(ctx, tx(ctx), m)
			if err != nil || answer == nil {
				return err
			}
			return app.Publish(ctx, answer)
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m ReleaseStock) error {
			return t.release(ctx, tx(ctx), m.OrderID)
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m ConfirmOrder) error {
			return t.setStatus(ctx, tx(ctx), m.OrderID, "confirmed", "")
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m CancelOrder) error {
			return t.setStatus(ctx, tx(ctx), m.OrderID, "cancelled", m.Reason)
		}),
		reqreply.Handle(app, func(ctx context.Context, q QuotePrice) (PriceQuote, error) {
			unit, ok, err := t.price(ctx, tx(ctx), q.SKU)
			switch {
			case err != nil:
				return PriceQuote{}, err
			case !ok:
				return PriceQuote{}, hexeract.Permanent(fmt.Errorf("sku %q: %w", q.SKU, errUnknownSKU))
			}
			return PriceQuote{UnitCents: unit, TotalCents: unit * int64(q.Qty)}, nil
		}),
	)
}

// getOrder is the mediator's handler of GetOrder.
func getOrder[TTx any](app *hexeract.App, sqlOf func(TTx) db, t tables) func(context.Context, GetOrder) (OrderView, error) {
	return func(ctx context.Context, q GetOrder) (v OrderView, err error) {
		return v, hexeract.InTx(ctx, app, func(ctx context.Context, tx TTx) (err error) {
			v, err = t.order(ctx, sqlOf(tx), q.ID)
			return err
		})
	}
}
