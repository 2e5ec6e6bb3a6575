package mediator_test

// Benchmarks of the mediator against the floor (a direct call of the handler
// through an interface) and against github.com/mehdihadeli/go-mediatr
// v1.4.0, in one run:
//
//	go test ./mediator -run '^$' -bench . -benchmem -count 3
//
// All rows use the same value-typed request and response and the same
// handler body. docs/mediator.md has the results.

import (
	"context"
	"testing"

	mediatr "github.com/mehdihadeli/go-mediatr"

	"github.com/hexeract/hexeract/mediator"
)

type benchQuery struct{ ID int }

type benchResult struct{ ID int }

type benchHandler struct{}

func (benchHandler) Handle(_ context.Context, q benchQuery) (benchResult, error) {
	return benchResult{ID: q.ID + 1}, nil
}

// benchPtrHandler is the same handler for pointer-typed messages.
type benchPtrHandler struct{}

func (benchPtrHandler) Handle(_ context.Context, q *benchQuery) (*benchResult, error) {
	return (*benchResult)(q), nil
}

type benchEvent struct{ ID int }

type benchEventHandler struct{}

func (benchEventHandler) Handle(_ context.Context, e benchEvent) error {
	if e.ID < 0 {
		return context.Canceled
	}
	return nil
}

// The floor: the handler called through an interface held in a package
// variable, so the compiler cannot devirtualise the call.
var (
	directHandler mediator.Handler[benchQuery, benchResult] = benchHandler{}
	directEvent   mediator.NotificationHandler[benchEvent]  = benchEventHandler{}
	sink          benchResult
)

func noop(ctx context.Context, _ mediator.Info, msg any, next mediator.Next) (any, error) {
	return next(ctx, msg)
}

func typedNoop(ctx context.Context, q benchQuery, next mediator.HandlerFunc[benchQuery, benchResult]) (benchResult, error) {
	return next(ctx, q)
}

func BenchmarkSend(b *testing.B) {
	ctx := context.Background()
	b.Run("Direct", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			r, err := directHandler.Handle(ctx, benchQuery{ID: i})
			if err != nil {
				b.Fatal(err)
			}
			sink = r
		}
	})
	run := func(b *testing.B, m *mediator.Mediator) {
		must(b, mediator.Register[benchQuery, benchResult](m, benchHandler{}))
		for i := 0; b.Loop(); i++ {
			r, err := mediator.Send[benchQuery, benchResult](ctx, m, benchQuery{ID: i})
			if err != nil {
				b.Fatal(err)
			}
			sink = r
		}
	}
	b.Run("Hexeract/NoBehaviors", func(b *testing.B) { run(b, newMediator(b)) })
	b.Run("Hexeract/2Behaviors", func(b *testing.B) {
		run(b, newMediator(b, mediator.WithBehaviors(mediator.Around(noop), mediator.Around(noop))))
	})
	b.Run("Hexeract/3Behaviors", func(b *testing.B) {
		run(b, newMediator(b, mediator.WithBehaviors(mediator.Around(noop), mediator.Around(noop), mediator.Around(noop))))
	})
	b.Run("Hexeract/3TypedBehaviors", func(b *testing.B) {
		m := newMediator(b)
		for range 3 {
			must(b, mediator.UseFor(m, typedNoop))
		}
		run(b, m)
	})
	b.Run("Hexeract/3BehaviorsPointerMessages", func(b *testing.B) {
		m := newMediator(b, mediator.WithBehaviors(mediator.Around(noop), mediator.Around(noop), mediator.Around(noop)))
		must(b, mediator.Register[*benchQuery, *benchResult](m, benchPtrHandler{}))
		q := &benchQuery{}
		for b.Loop() {
			r, err := mediator.Send[*benchQuery, *benchResult](ctx, m, q)
			if err != nil {
				b.Fatal(err)
			}
			sink = *r
		}
	})

	mediatrRun := func(b *testing.B, behaviors ...mediatr.PipelineBehavior) {
		mediatr.ClearRequestRegistrations()
		mediatr.ClearPipelineBehaviors()
		b.Cleanup(func() {
			mediatr.ClearRequestRegistrations()
			mediatr.ClearPipelineBehaviors()
		})
		must(b, mediatr.RegisterRequestHandler[benchQuery, benchResult](benchHandler{}))
		if len(behaviors) > 0 {
			must(b, mediatr.RegisterRequestPipelineBehaviors(behaviors...))
		}
		for i := 0; b.Loop(); i++ {
			r, err := mediatr.Send[benchQuery, benchResult](ctx, benchQuery{ID: i})
			if err != nil {
				b.Fatal(err)
			}
			sink = r
		}
	}
	b.Run("GoMediatr/NoBehaviors", func(b *testing.B) { mediatrRun(b) })
	b.Run("GoMediatr/2Behaviors", func(b *testing.B) { mediatrRun(b, mediatrNoop1{}, mediatrNoop2{}) })
}

func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	b.Run("Direct", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := directEvent.Handle(ctx, benchEvent{ID: i}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{1, 5} {
		name := map[int]string{1: "Hexeract/1Handler", 5: "Hexeract/5Handlers"}[n]
		b.Run(name, func(b *testing.B) {
			m := newMediator(b)
			for range n {
				must(b, mediator.Subscribe[benchEvent](m, benchEventHandler{}))
			}
			for i := 0; b.Loop(); i++ {
				if err := mediator.Publish(ctx, m, benchEvent{ID: i}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("GoMediatr/1Handler", func(b *testing.B) {
		mediatr.ClearNotificationRegistrations()
		b.Cleanup(mediatr.ClearNotificationRegistrations)
		must(b, mediatr.RegisterNotificationHandler[benchEvent](benchEventHandler{}))
		for i := 0; b.Loop(); i++ {
			if err := mediatr.Publish(ctx, benchEvent{ID: i}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// go-mediatr refuses two behaviours of the same type, hence two types.
type (
	mediatrNoop1 struct{}
	mediatrNoop2 struct{}
)

func (mediatrNoop1) Handle(ctx context.Context, _ any, next mediatr.RequestHandlerFunc) (any, error) {
	return next(ctx)
}

func (mediatrNoop2) Handle(ctx context.Context, _ any, next mediatr.RequestHandlerFunc) (any, error) {
	return next(ctx)
}
