package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/scheduler"
)

type BookingRequested struct{ BookingID string }

func (BookingRequested) MessageType() string { return "example.booking.requested" }

type ReserveSeat struct{ BookingID string }

func (ReserveSeat) MessageType() string { return "example.seat.reserve" }

type SeatReserved struct {
	BookingID string
	Seat      string
}

func (SeatReserved) MessageType() string { return "example.seat.reserved" }

type BookingExpired struct{ BookingID string }

func (BookingExpired) MessageType() string { return "example.booking.expired" }

type Booking struct {
	ID   string
	Seat string
}

// A booking saga on the in-memory store: the request reserves a seat with a
// one-hour deadline; the reservation completes the booking (cancelling the
// deadline), and the completed instance is deleted.
func Example() {
	app, _ := hexeract.New(hexeract.WithLogger(quietLogger()))
	defer app.Close()
	store := saga.NewMemoryStore()
	confirmed := make(chan struct{})

	def := saga.Define[Booking]("bookings")
	saga.StartedBy(def, func(e BookingRequested) string { return e.BookingID },
		func(c *saga.Context[Booking], s *Booking, e BookingRequested) error {
			s.ID = e.BookingID
			c.Send(ReserveSeat{BookingID: e.BookingID})
			c.Timeout(time.Hour, BookingExpired{BookingID: e.BookingID})
			return nil
		})
	saga.Handles(def, func(e SeatReserved) string { return e.BookingID },
		func(c *saga.Context[Booking], s *Booking, e SeatReserved) error {
			s.Seat = e.Seat
			fmt.Printf("booking %s confirmed: seat %s\n", s.ID, s.Seat)
			c.Complete()
			return nil
		})
	saga.OnTimeout(def, func(c *saga.Context[Booking], s *Booking, e BookingExpired) error {
		c.Fail(errors.New("no seat in time"))
		return nil
	})
	if err := saga.Register(app, def, store); err != nil {
		fmt.Println(err)
		return
	}
	// The seat service.
	_ = hexeract.HandleFunc(app, func(ctx context.Context, m ReserveSeat) error {
		fmt.Println("seat service reserves a seat for", m.BookingID)
		defer close(confirmed)
		return app.Publish(ctx, SeatReserved{BookingID: m.BookingID, Seat: "12A"})
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = app.Run(ctx) }()
	<-app.Running()
	_ = app.Publish(ctx, BookingRequested{BookingID: "b-1"})

	<-confirmed
	for {
		if _, err := store.Get(ctx, "bookings", "b-1"); errors.Is(err, saga.ErrNotFound) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Println("booking b-1 finished and removed from the store")
	// Output:
	// seat service reserves a seat for b-1
	// booking b-1 confirmed: seat 12A
	// booking b-1 finished and removed from the store
}

// The SQL store, here on PostgreSQL, commits the state, the outgoing
// messages (outbox) and the timeouts (scheduler) in one transaction.
func ExampleNewSQLStore() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("HEXERACT_DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	ob, err := outbox.New(postgres.New(pool)) // the saga writes its messages here
	if err != nil {
		panic(err)
	}
	// Due timeouts go to the outbox, in the hand-off transaction.
	sched, err := scheduler.New(postgres.New(pool), ob) // due timeouts go to the outbox
	if err != nil {
		panic(err)
	}
	store, err := saga.NewSQLStore(postgres.New(pool)) // on the hexeract_sagas table
	if err != nil {
		panic(err)
	}
	if err := store.Migrate(ctx); err != nil { // creates or upgrades its tables
		panic(err)
	}
	transport := gochannel.New(gochannel.Config{}, nil) // any Watermill transport
	relay, err := outbox.NewRelay(postgres.New(pool), transport)
	if err != nil {
		panic(err)
	}
	app, err := hexeract.New(hexeract.WithPubSub(transport, transport),
		hexeract.WithWorker(relay), hexeract.WithWorker(sched))
	if err != nil {
		panic(err)
	}
	def := saga.Define[Booking]("bookings")
	saga.StartedBy(def, func(e BookingRequested) string { return e.BookingID },
		func(c *saga.Context[Booking], s *Booking, e BookingRequested) error {
			c.Send(ReserveSeat{BookingID: e.BookingID})
			return nil
		})
	err = saga.Register(app, def, store, saga.WithOutbox(ob), saga.WithScheduler(sched),
		saga.WithUnknownInstance(saga.UnknownDeadLetter), saga.WithRetention(7*24*time.Hour))
	if err != nil {
		panic(err)
	}
	_ = app.Run(ctx)
}

type JourneyRequested struct{ TripID string }

func (JourneyRequested) MessageType() string { return "example.journey.requested" }

type RentCar struct{ TripID string }

func (RentCar) MessageType() string { return "example.car.rent" }

type CarUnavailable struct{ TripID string }

func (CarUnavailable) MessageType() string { return "example.car.unavailable" }

type CancelBooking struct{ What string }

func (CancelBooking) MessageType() string { return "example.journey.cancel_booking" }

type Journey struct{ Booked []string }

// Compensations run one at a time, last registered first, when the saga
// fails.
func ExampleOnCompensate() {
	app, _ := hexeract.New(hexeract.WithLogger(quietLogger()))
	defer app.Close()
	done := make(chan struct{})

	def := saga.Define[Journey]("journeys")
	saga.StartedBy(def, func(e JourneyRequested) string { return e.TripID },
		func(c *saga.Context[Journey], s *Journey, e JourneyRequested) error {
			for _, what := range []string{"flight", "hotel"} {
				s.Booked = append(s.Booked, what)
				c.Compensate(CancelBooking{What: what})
			}
			c.Send(RentCar{TripID: e.TripID})
			return nil
		})
	saga.Handles(def, func(e CarUnavailable) string { return e.TripID },
		func(c *saga.Context[Journey], s *Journey, e CarUnavailable) error {
			fmt.Println("no car: the trip fails")
			c.Fail(errors.New("no car available"))
			return nil
		})
	saga.OnCompensate(def, func(c *saga.Context[Journey], s *Journey, cb CancelBooking) error {
		fmt.Println("cancel", cb.What)
		if cb.What == "flight" {
			close(done)
		}
		return nil
	})
	if err := saga.Register(app, def, saga.NewMemoryStore()); err != nil {
		fmt.Println(err)
		return
	}
	_ = hexeract.HandleFunc(app, func(ctx context.Context, m RentCar) error {
		return app.Publish(ctx, CarUnavailable(m))
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = app.Run(ctx) }()
	<-app.Running()
	_ = app.Publish(ctx, JourneyRequested{TripID: "t-1"})
	<-done
	// Output:
	// no car: the trip fails
	// cancel hotel
	// cancel flight
}
