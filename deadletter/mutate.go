package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// Selection says which dead letters a mutation applies to: exactly one of
// ID, Group or a filter (Filter; the zero Filter selects every dead letter,
// so it must be asked for with All).
type Selection struct {
	ID     int64     `json:"id,omitempty"`
	Group  *GroupKey `json:"group,omitempty"`
	Filter Filter    `json:"filter,omitzero"`
	// All confirms that an empty Filter means every dead letter.
	All bool `json:"all,omitempty"`
}

func (sel Selection) storeFilter() (store.DeadLetterFilter, error) {
	n := 0
	if sel.ID != 0 {
		n++
	}
	if sel.Group != nil {
		n++
	}
	if sel.Filter != (Filter{}) || sel.All {
		n++
	}
	switch {
	case n == 0:
		return store.DeadLetterFilter{}, errors.New("deadletter: select dead letters by id, group or filter (an empty filter needs All)")
	case n > 1:
		return store.DeadLetterFilter{}, errors.New("deadletter: select dead letters by one of id, group or filter")
	case sel.ID != 0:
		return store.DeadLetterFilter{IDs: []int64{sel.ID}}, nil
	case sel.Group != nil:
		return store.DeadLetterFilter{FaultType: sel.Group.FaultType, Handler: sel.Group.Handler, Exact: true}, nil
	}
	f := sel.Filter.toStore()
	f.AfterID = 0
	return f, nil
}

// MutateOptions are the options of every mutation.
type MutateOptions struct {
	// Operator is who runs the mutation, for the audit row. Default
	// "unknown".
	Operator string
	// DryRun reports what would be done (Result.IDs, Result.Selected) and
	// changes nothing, audit table included.
	DryRun bool
	// BatchSize is how many dead letters one transaction moves; 0 means 1,
	// so an interruption (ctx cancelled) finishes only the message in hand.
	BatchSize int
	// Progress, when set, is called after each committed transaction with
	// the number of dead letters done so far.
	Progress func(done int)
}

// Result says what a mutation did (or, with DryRun, would do).
type Result struct {
	Action   string  `json:"action"`   // retry, delete, edit, edit+retry
	Selected int     `json:"selected"` // dead letters selected at the start
	Done     int     `json:"done"`     // dead letters retried, deleted or edited
	IDs      []int64 `json:"ids"`      // the selected ids
	DryRun   bool    `json:"dry_run"`
	// Interrupted is true when ctx ended before every selected dead letter
	// was processed; those not done are still dead.
	Interrupted bool  `json:"interrupted"`
	AuditID     int64 `json:"audit_id,omitempty"`
}

// Line returns the one-line audit summary of r.
func (r Result) Line(operator string, sel Selection) string {
	what, _ := json.Marshal(sel)
	verb := r.Action
	if r.DryRun {
		return fmt.Sprintf("dry run: %s would %s %d dead letter(s) selected by %s; nothing changed", operatorOr(operator), verb, r.Selected, what)
	}
	state := "done"
	if r.Interrupted {
		state = "interrupted"
	}
	return fmt.Sprintf("audit #%d: %s %s %d of %d dead letter(s) selected by %s (%s)", r.AuditID, operatorOr(operator), pastTense(verb), r.Done, r.Selected, what, state)
}

func pastTense(verb string) string {
	switch verb {
	case "retry":
		return "retried"
	case "delete":
		return "deleted"
	case "edit":
		return "edited"
	case "edit+retry":
		return "edited and retried"
	}
	return verb
}

func operatorOr(op string) string {
	if op == "" {
		return "unknown"
	}
	return op
}

// Retry publishes the selected dead letters again through the outbox, to
// their original topic, and deletes them: each in one transaction with its
// outbox row. The selection is taken once at the start; a dead letter
// retried and failed again meanwhile is a new row and is not retried again.
// A row another operator removed meanwhile is skipped. The message keeps its
// id, payload and metadata, with router.KeyDeadLetterRetries one higher.
func (s *Store) Retry(ctx context.Context, sel Selection, opts MutateOptions) (Result, error) {
	if s.ob == nil && !opts.DryRun {
		return Result{Action: "retry"}, ErrNoOutbox
	}
	return s.mutate(ctx, "retry", sel, opts, func(ctx context.Context, tx store.ExecutorTx, row *store.DeadLetterRow) error {
		return s.retryRow(ctx, tx, row)
	})
}

// Delete deletes the selected dead letters for good.
func (s *Store) Delete(ctx context.Context, sel Selection, opts MutateOptions) (Result, error) {
	return s.mutate(ctx, "delete", sel, opts, func(ctx context.Context, tx store.ExecutorTx, row *store.DeadLetterRow) error {
		n, err := tx.DeadLetterDelete(ctx, s.t, []int64{row.ID})
		if err == nil && n != 1 {
			err = fmt.Errorf("dead letter %d vanished", row.ID)
		}
		return err
	})
}

// retryRow writes row's message to the outbox and deletes the row, in tx.
func (s *Store) retryRow(ctx context.Context, tx store.ExecutorTx, row *store.DeadLetterRow) error {
	d, err := fromRow(row)
	if err != nil {
		return err
	}
	if d.Topic == "" {
		return fmt.Errorf("deadletter: dead letter %d has no original topic", row.ID)
	}
	msg := d.Message
	msg.Metadata[router.KeyDeadLetterRetries] = strconv.Itoa(row.Retries + 1)
	if err := s.ob.PublishMessagesWith(ctx, tx, d.Topic, msg); err != nil {
		return fmt.Errorf("deadletter: write dead letter %d to the outbox: %w", row.ID, err)
	}
	n, err := tx.DeadLetterDelete(ctx, s.t, []int64{row.ID})
	if err == nil && n != 1 {
		err = fmt.Errorf("dead letter %d vanished", row.ID)
	}
	return err
}

// Edit changes the payload or metadata of dead letter id and, with
// e.Retry, retries it in the same transaction.
func (s *Store) Edit(ctx context.Context, id int64, e Edit, opts MutateOptions) (Result, error) {
	action := "edit"
	if e.Retry {
		action = "edit+retry"
		if s.ob == nil && !opts.DryRun {
			return Result{Action: action}, ErrNoOutbox
		}
	}
	if e.Payload == nil && len(e.Set) == 0 && len(e.Unset) == 0 {
		return Result{Action: action}, errors.New("deadletter: Edit changes nothing: set Payload, Set or Unset")
	}
	for k := range e.Set {
		if strings.TrimSpace(k) == "" {
			return Result{Action: action}, errors.New("deadletter: Edit: empty metadata key")
		}
		if middleware.IsFaultKey(k) || k == router.KeyDeadLetterRetries {
			return Result{Action: action}, fmt.Errorf("deadletter: Edit: %s is kept by the store, not message metadata to set", k)
		}
	}
	return s.mutate(ctx, action, Selection{ID: id}, opts, func(ctx context.Context, tx store.ExecutorTx, row *store.DeadLetterRow) error {
		md := message.Metadata{}
		if row.Metadata != "" {
			if err := json.Unmarshal([]byte(row.Metadata), &md); err != nil {
				return fmt.Errorf("dead letter %d: metadata: %w", row.ID, err)
			}
		}
		for _, k := range e.Unset {
			delete(md, k)
		}
		for k, v := range e.Set {
			md[k] = v
		}
		mdJSON, err := json.Marshal(md)
		if err != nil {
			return err
		}
		payload := row.Payload
		if e.Payload != nil {
			payload = e.Payload
		}
		if ok, err := tx.DeadLetterUpdate(ctx, s.t, row.ID, payload, string(mdJSON)); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("dead letter %d vanished", row.ID)
			}
			return err
		}
		if !e.Retry {
			return nil
		}
		row.Payload, row.Metadata = payload, string(mdJSON)
		return s.retryRow(ctx, tx, row)
	})
}

// Edit is a change of a dead letter.
type Edit struct {
	// Payload replaces the payload when not nil.
	Payload []byte
	// Set sets metadata keys; Unset removes them (before Set).
	Set   map[string]string
	Unset []string
	// Retry retries the edited dead letter in the same transaction.
	Retry bool
}

// mutate runs do on each selected dead letter, BatchSize per transaction,
// with one audit row whose count grows in the same transactions.
func (s *Store) mutate(ctx context.Context, action string, sel Selection, opts MutateOptions,
	do func(ctx context.Context, tx store.ExecutorTx, row *store.DeadLetterRow) error,
) (Result, error) {
	res := Result{Action: action, DryRun: opts.DryRun}
	f, err := sel.storeFilter()
	if err != nil {
		return res, err
	}
	ids, err := s.st.Executor().DeadLetterIDs(ctx, s.t, f)
	if err != nil {
		return res, fmt.Errorf("deadletter: %s: select: %w", action, err)
	}
	res.IDs, res.Selected = ids, len(ids)
	if sel.ID != 0 && len(ids) == 0 {
		return res, fmt.Errorf("%w: %d in %s", ErrNotFound, sel.ID, s.t.Name())
	}
	if opts.DryRun {
		return res, nil
	}
	selJSON, err := json.Marshal(sel)
	if err != nil {
		return res, err
	}
	bg := context.WithoutCancel(ctx) // the transaction in hand finishes after an interruption
	res.AuditID, err = s.st.Executor().DeadLetterAuditInsert(bg, s.t, &store.DeadLetterAudit{
		At: s.now(), Operator: operatorOr(opts.Operator), Action: action, Selector: string(selJSON), Outcome: "running",
	})
	if err != nil {
		return res, fmt.Errorf("deadletter: %s: write the audit row: %w", action, err)
	}
	batch := opts.BatchSize
	if batch <= 0 {
		batch = 1
	}
	var runErr error
	for start := 0; start < len(ids) && runErr == nil; start += batch {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		chunk := ids[start:min(start+batch, len(ids))]
		done := 0
		runErr = store.RunInTx(bg, s.st, func(ctx context.Context, tx store.ExecutorTx) error {
			done = 0
			for _, id := range chunk {
				row, err := tx.DeadLetterTake(ctx, s.t, id)
				if err != nil {
					return err
				}
				if row == nil { // removed meanwhile (another operator)
					continue
				}
				if err := do(ctx, tx, row); err != nil {
					return err
				}
				done++
			}
			return tx.DeadLetterAuditUpdate(ctx, s.t, res.AuditID, int64(done), "")
		})
		if runErr == nil {
			if sig, ok := s.ob.(interface{ Signal() }); ok && done > 0 && action != "delete" && action != "edit" {
				sig.Signal() // wake the relays of this process: the rows are committed
			}
			res.Done += done
			if opts.Progress != nil {
				opts.Progress(res.Done)
			}
		}
	}
	outcome := "done"
	switch {
	case runErr != nil:
		outcome = "failed: " + runErr.Error()
	case res.Interrupted:
		outcome = "interrupted"
	}
	if err := s.st.Executor().DeadLetterAuditUpdate(bg, s.t, res.AuditID, 0, outcome); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return res, fmt.Errorf("deadletter: %s stopped after %d of %d: %w", action, res.Done, res.Selected, runErr)
	}
	if res.Interrupted {
		return res, fmt.Errorf("deadletter: %s interrupted after %d of %d: %w", action, res.Done, res.Selected, ctx.Err())
	}
	return res, nil
}
