package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/mediator"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/router"
)

// placeOrder is the body of POST /orders.
type placeOrder struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// routes are the HTTP API.
func routes[TTx any](app *hexeract.App, queries *mediator.Mediator, sqlOf func(TTx) db, t tables) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var in placeOrder
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.SKU == "" || in.Qty <= 0 {
			http.Error(w, "want {\"sku\": ..., \"qty\": > 0}", http.StatusBadRequest)
			return
		}
		quote, err := reqreply.Request[QuotePrice, PriceQuote](r.Context(), app, QuotePrice(in), reqreply.Timeout(5*time.Second))
		if errors.Is(err, errUnknownSKU) {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		id := "o-" + router.NewID()
		err = hexeract.InTx(r.Context(), app, func(ctx context.Context, tx TTx) error {
			if err := t.insertOrder(ctx, sqlOf(tx), id, in.SKU, in.Qty, quote.UnitCents); err != nil {
				return err
			}
			return app.Publish(ctx, OrderPlaced{OrderID: id, SKU: in.SKU, Qty: in.Qty})
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusCreated, OrderView{ID: id, SKU: in.SKU, Qty: in.Qty, UnitCents: quote.UnitCents, Status: "placed"})
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := mediator.Send[GetOrder, OrderView](r.Context(), queries, GetOrder{ID: r.PathValue("id")})
		switch {
		case errors.Is(err, errNotFound):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			writeJSON(w, http.StatusOK, v)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
