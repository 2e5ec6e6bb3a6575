package mediator_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/hexeract/hexeract/mediator"
)

type GetOrder struct{ ID string }

type Order struct {
	ID    string
	Total int
}

func ExampleSend() {
	m, _ := mediator.New()
	_ = mediator.RegisterFunc(m, func(ctx context.Context, q GetOrder) (Order, error) {
		return Order{ID: q.ID, Total: 42}, nil
	})

	order, err := mediator.Send[GetOrder, Order](context.Background(), m, GetOrder{ID: "o-1"})
	fmt.Println(order, err)

	_, err = mediator.Send[GetUser, User](context.Background(), m, GetUser{ID: 1})
	fmt.Println(err)
	// Output:
	// {o-1 42} <nil>
	// mediator: no handler registered for request mediator_test.GetUser
}

type PlaceOrder struct{ Item string }

func ExampleExecute() {
	m, _ := mediator.New()
	_ = mediator.RegisterCommand(m, func(ctx context.Context, c PlaceOrder) error {
		fmt.Println("placing", c.Item)
		return nil
	})

	err := mediator.Execute(context.Background(), m, PlaceOrder{Item: "book"})
	fmt.Println(err)
	// Output:
	// placing book
	// <nil>
}

type OrderPlaced struct{ ID string }

func ExamplePublish() {
	m, _ := mediator.New(mediator.WithPublishStrategy(mediator.RunAll))
	_ = mediator.SubscribeFunc(m, func(ctx context.Context, e OrderPlaced) error {
		fmt.Println("email for", e.ID)
		return errors.New("smtp down")
	})
	_ = mediator.SubscribeFunc(m, func(ctx context.Context, e OrderPlaced) error {
		fmt.Println("stock for", e.ID)
		return nil
	})

	// RunAll runs every handler and joins their errors.
	err := mediator.Publish(context.Background(), m, OrderPlaced{ID: "o-1"})
	fmt.Println("error:", err)

	// The strategy can also be chosen per call.
	err = mediator.PublishWith(context.Background(), m, mediator.StopOnFirstError, OrderPlaced{ID: "o-2"})
	fmt.Println("error:", err)
	// Output:
	// email for o-1
	// stock for o-1
	// error: smtp down
	// email for o-2
	// error: smtp down
}

type ListOrders struct{ Customer string }

func ExampleStream() {
	m, _ := mediator.New()
	_ = mediator.RegisterStreamFunc(m, func(ctx context.Context, q ListOrders, yield func(Order) bool) error {
		for i := 1; i <= 100; i++ {
			// Stop as soon as the caller does.
			if !yield(Order{ID: fmt.Sprintf("%s-%d", q.Customer, i)}) {
				return nil
			}
		}
		return nil
	})

	for order, err := range mediator.Stream[ListOrders, Order](context.Background(), m, ListOrders{Customer: "ada"}) {
		if err != nil {
			fmt.Println("error:", err)
			break
		}
		fmt.Println(order.ID)
		if order.ID == "ada-3" {
			break
		}
	}
	// Output:
	// ada-1
	// ada-2
	// ada-3
}

// A cross-cutting behaviour built with Around, next to the built-in ones.
// Behaviours run in the order they are given, the first one outermost.
func ExampleAround() {
	audit := mediator.Around(func(ctx context.Context, info mediator.Info, msg any, next mediator.Next) (any, error) {
		fmt.Printf("-> %s %s\n", info.Kind, info.Name)
		out, err := next(ctx, msg)
		fmt.Printf("<- %s %s err=%v\n", info.Kind, info.Name, err)
		return out, err
	})
	m, _ := mediator.New(mediator.WithBehaviors(mediator.Recover(), audit, mediator.Validation()))
	_ = mediator.RegisterCommand(m, func(ctx context.Context, c SignUp) error {
		fmt.Println("signed up", c.Email)
		return nil
	})

	_ = mediator.Execute(context.Background(), m, SignUp{Email: "ada@example.com"})
	_ = mediator.Execute(context.Background(), m, SignUp{Email: "nobody"})
	// Output:
	// -> request mediator_test.SignUp
	// signed up ada@example.com
	// <- request mediator_test.SignUp err=<nil>
	// -> request mediator_test.SignUp
	// <- request mediator_test.SignUp err=mediator: invalid mediator_test.SignUp: email must contain @
}

// A typed behaviour wraps one request type only and sees it with its
// static types.
func ExampleUseFor() {
	m, _ := mediator.New()
	_ = mediator.RegisterFunc(m, func(ctx context.Context, q GetOrder) (Order, error) {
		return Order{ID: q.ID, Total: 10}, nil
	})
	_ = mediator.UseFor(m, func(ctx context.Context, q GetOrder, next mediator.HandlerFunc[GetOrder, Order]) (Order, error) {
		q.ID = strings.ToUpper(q.ID)
		o, err := next(ctx, q)
		o.Total *= 2
		return o, err
	})

	o, _ := mediator.Send[GetOrder, Order](context.Background(), m, GetOrder{ID: "o-7"})
	fmt.Println(o)
	// Output: {O-7 20}
}

func ExampleLogging() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	m, _ := mediator.New(mediator.WithBehaviors(mediator.Logging(logger)))
	_ = mediator.RegisterCommand(m, func(ctx context.Context, c PlaceOrder) error {
		return errors.New("out of stock")
	})

	_ = mediator.Execute(context.Background(), m, PlaceOrder{Item: "book"})
	// Output:
	// level=ERROR msg="mediator: handler failed" kind=request type=mediator_test.PlaceOrder error="out of stock"
}
