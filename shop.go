package main

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// product is one entry of the catalogue. Capacity is what a restock fills the shelf back up to.
type product struct {
	SKU        string
	Name       string
	PriceCents int64
	Capacity   int
}

// catalogue is what the shop sells. The limited edition has a small shelf on purpose:
// under the bundled load it sells out now and then, so "out of stock" is a real,
// occasional reason in the dashboards rather than never or always.
var catalogue = []product{
	{SKU: "TEE-BLK-M", Name: "Black T-shirt (M)", PriceCents: 1999, Capacity: 200},
	{SKU: "MUG-OTEL", Name: "OpenTelemetry mug", PriceCents: 1250, Capacity: 150},
	{SKU: "HOODIE-GRY-L", Name: "Grey hoodie (L)", PriceCents: 4999, Capacity: 80},
	{SKU: "STICKER-PACK", Name: "Sticker pack", PriceCents: 499, Capacity: 500},
	{SKU: "LIMITED-PIN", Name: "Limited edition pin", PriceCents: 2500, Capacity: 5},
}

// Order statuses.
const (
	statusCreated       = "created"
	statusPaying        = "paying"
	statusPaid          = "paid"
	statusPaymentFailed = "payment_failed"
)

type orderLine struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

type order struct {
	ID         string      `json:"order_id"`
	Status     string      `json:"status"`
	Items      []orderLine `json:"items"`
	TotalCents int64       `json:"total_cents"`
	Currency   string      `json:"currency"`
	PaymentID  string      `json:"payment_id,omitempty"`
	// FailureReason is the provider's reason for the last failed payment attempt.
	FailureReason string    `json:"failure_reason,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// payAttempts numbers the payment attempts; with the order id it makes each attempt's idempotency key.
	payAttempts int
	// unanswered is the last attempt if it got no answer (it may have been charged): the next payment of
	// the order sends it again as it was, key and all, so the gateway answers it instead of charging anew.
	unanswered *charge
}

// shopError is a failure with a machine-readable reason (the error_total label)
// and the HTTP status it maps to.
type shopError struct {
	Status int
	Reason string
	Msg    string
}

func (e *shopError) Error() string { return e.Msg }

// store holds the inventory and the orders, in memory, behind one mutex:
// reserving stock for all lines of an order is one atomic step, so stock never goes negative.
type store struct {
	mu          sync.Mutex
	stock       map[string]int
	products    map[string]product
	orders      map[string]*order
	orderIDs    []string // creation order, to evict the oldest beyond maxOrders
	maxOrders   int
	restockEach time.Duration
	lastRestock time.Time
	now         func() time.Time
}

func newStore(restockEvery time.Duration, maxOrders int, now func() time.Time) *store {
	s := &store{
		stock:       make(map[string]int, len(catalogue)),
		products:    make(map[string]product, len(catalogue)),
		orders:      make(map[string]*order),
		maxOrders:   maxOrders,
		restockEach: restockEvery,
		now:         now,
		lastRestock: now(),
	}
	for _, p := range catalogue {
		s.products[p.SKU] = p
		s.stock[p.SKU] = p.Capacity
	}
	return s
}

// lineRequest is one line of an incoming order: what and how many.
type lineRequest struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// priceLines resolves SKUs against the catalogue.
func (s *store) priceLines(lines []lineRequest) ([]orderLine, int64, error) {
	out := make([]orderLine, 0, len(lines))
	var total int64
	for _, l := range lines {
		p, ok := s.products[l.SKU]
		if !ok {
			return nil, 0, &shopError{Status: 400, Reason: "unknown_sku", Msg: fmt.Sprintf("unknown sku %q (known: %s)", l.SKU, strings.Join(sortedSKUs(), ", "))}
		}
		out = append(out, orderLine{SKU: p.SKU, Name: p.Name, Quantity: l.Quantity, UnitPriceCents: p.PriceCents})
		total += p.PriceCents * int64(l.Quantity)
	}
	return out, total, nil
}

// outOfStock is returned by reserve; it names the line that could not be filled.
type outOfStock struct {
	SKU       string
	Requested int
	Available int
}

func (e *outOfStock) Error() string {
	return fmt.Sprintf("not enough stock for %s: requested %d, available %d", e.SKU, e.Requested, e.Available)
}

// reserve deducts stock for every line, or for none of them.
// The shelves are refilled lazily to capacity once every restock interval.
func (s *store) reserve(lines []orderLine) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); s.restockEach > 0 && now.Sub(s.lastRestock) >= s.restockEach {
		for _, p := range catalogue {
			s.stock[p.SKU] = p.Capacity
		}
		s.lastRestock = now
	}
	for _, l := range lines {
		if have := s.stock[l.SKU]; have < l.Quantity {
			return &outOfStock{SKU: l.SKU, Requested: l.Quantity, Available: have}
		}
	}
	for _, l := range lines {
		s.stock[l.SKU] -= l.Quantity
	}
	return nil
}

// stockOf reports what is on the shelf now (for tests and logs).
func (s *store) stockOf(sku string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stock[sku]
}

// addOrder records a new order, evicting the oldest once there are maxOrders,
// so memory stays bounded however long the lab runs.
func (s *store) addOrder(lines []orderLine, total int64) order {
	o := &order{
		ID:         newID("ord"),
		Status:     statusCreated,
		Items:      lines,
		TotalCents: total,
		Currency:   "USD",
		CreatedAt:  s.now().UTC(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[o.ID] = o
	s.orderIDs = append(s.orderIDs, o.ID)
	if len(s.orderIDs) > s.maxOrders {
		delete(s.orders, s.orderIDs[0])
		s.orderIDs = slices.Delete(s.orderIDs, 0, 1)
	}
	return *o
}

func (s *store) getOrder(id string) (order, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return order{}, false
	}
	return *o, true
}

// startPayment moves an order to "paying" and answers the charge to send: a new attempt with its own
// idempotency key, or the last attempt again if that one got no answer (whatever method is asked now, so
// that paying again can never charge twice). Only one payment per order can be in flight, and a paid
// order is never charged again.
func (s *store) startPayment(id, method string) (order, charge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[id]
	if !ok {
		return order{}, charge{}, &shopError{Status: 404, Reason: "order_not_found", Msg: fmt.Sprintf("order %q not found", id)}
	}
	switch o.Status {
	case statusPaid:
		return *o, charge{}, &shopError{Status: 409, Reason: "already_paid", Msg: "order is already paid"}
	case statusPaying:
		return *o, charge{}, &shopError{Status: 409, Reason: "payment_in_progress", Msg: "a payment for this order is in progress"}
	}
	o.Status = statusPaying
	if o.unanswered != nil {
		return *o, *o.unanswered, nil
	}
	o.payAttempts++
	return *o, charge{IdempotencyKey: fmt.Sprintf("%s-%d", o.ID, o.payAttempts), AmountCents: o.TotalCents,
		Currency: o.Currency, Method: method, Reference: o.ID}, nil
}

// finishPayment records the provider's answer to charge c.
func (s *store) finishPayment(id string, c charge, paymentID string, failure *paymentFailure) order {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[id]
	if o == nil { // evicted while paying: nothing left to update
		return order{ID: id}
	}
	o.unanswered = nil
	switch {
	case failure == nil:
		o.Status, o.PaymentID, o.FailureReason = statusPaid, paymentID, ""
	default:
		o.Status, o.FailureReason = statusPaymentFailed, failure.Reason
		if failure.Unknown {
			o.unanswered = &c
		}
	}
	return *o
}

// paymentFailure is how a payment fails: the provider's reason and the status the shop answers.
type paymentFailure struct {
	Reason string
	Status int
	// Detail says more, for the log (the gateway's message, the timeout).
	Detail string
	// Unknown: no answer came, so the charge may have happened.
	Unknown bool
}

// paymentFailures are the provider's failure modes and how often each one occurs among failures.
var paymentFailures = []struct {
	paymentFailure
	weight float64
}{
	{paymentFailure{Reason: "card_declined", Status: 402}, 0.5},
	{paymentFailure{Reason: "insufficient_funds", Status: 402}, 0.3},
	{paymentFailure{Reason: "gateway_timeout", Status: 504}, 0.2},
}

// paymentProvider is the in-process simulation of an external payment gateway: some latency, and a
// configurable share of failures.
type paymentProvider struct {
	failureRate float64
	latency     time.Duration
	jitter      time.Duration
	// failureReason, if set, is the reason of every failure instead of the usual mix.
	failureReason string
}

// charge waits as long as a remote call would and returns a payment id, or the failure.
// Once sent, a charge runs to its end even if the client goes away: like a real
// gateway's, it can't be taken back half way, and the order must not stay "paying".
func (p paymentProvider) charge() (string, *paymentFailure) {
	wait := p.latency
	if p.jitter > 0 {
		wait += rand.N(p.jitter)
	}
	time.Sleep(wait) // the simulated network and provider latency
	if rand.Float64() >= p.failureRate {
		return newID("pay"), nil
	}
	if f := failureByReason(p.failureReason); f != nil {
		return "", f
	}
	pick := rand.Float64()
	for _, f := range paymentFailures {
		if pick < f.weight {
			return "", &f.paymentFailure
		}
		pick -= f.weight
	}
	return "", &paymentFailures[0].paymentFailure
}

// failureByReason finds a failure mode by its reason, or nil.
func failureByReason(reason string) *paymentFailure {
	for _, f := range paymentFailures {
		if f.Reason == reason {
			return &f.paymentFailure
		}
	}
	return nil
}

func newID(prefix string) string {
	return fmt.Sprintf("%s_%016x", prefix, rand.Uint64())
}

// sortedSKUs lists the catalogue's SKUs, for error messages.
func sortedSKUs() []string {
	out := make([]string, 0, len(catalogue))
	for _, p := range catalogue {
		out = append(out, p.SKU)
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}
