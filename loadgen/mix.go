package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// mix is what the load is made of. A checkout journey creates an order, then pays it (share
// pay of journeys), then looks it up (share lookup of journeys); a bad request is a journey of
// its own. bad is a share of all requests, so it means the same whatever pay and lookup are.
type mix struct {
	bad    float64 // share of all requests that are deliberately bad
	pay    float64 // share of created orders that are paid
	lookup float64 // share of created orders that are looked up afterwards
}

// defaultMix keeps the shop's error ratio (responses >= 400 / all responses) well under the 10% of
// the MiniShopHighErrorRate alert. With b=bad, p=pay, l=lookup and f the shop's payment failure
// rate, a checkout is 1+p+l requests and the expected ratio is
//
//	b + (1-b)·p·f/(1+p+l)  =  0.03 + 0.97·0.85·0.05/2.15  =  0.03 + 0.0192  ≈  4.9%   (f = 5%, the default)
//
// plus 409 out_of_stock: LIMITED-PIN has a shelf of 5 per restock (15 s), and at 5 requests/s
// about 3 pins are ordered per restock, so it sells out now and then (about 0.2% of requests,
// by a simulation of the shop's shelves). The other shelves last up to about 55 requests/s; at
// 50 requests/s the pin alone makes out_of_stock about 2% of requests, so about 7% in all.
// The alert's threshold is crossed when payments fail at f ≈ 18% with this mix,
// (0.10-b)·(1+p+l)/((1-b)·p), which is what the shop's failure-rate knob is for.
var defaultMix = mix{bad: 0.03, pay: 0.85, lookup: 0.30}

func (m mix) validate() error {
	var errs []error
	for _, s := range []struct {
		name string
		v    float64
	}{{"bad rate", m.bad}, {"pay rate", m.pay}, {"lookup rate", m.lookup}} {
		if !(s.v >= 0 && s.v <= 1) {
			errs = append(errs, fmt.Errorf("%s %v: want a share between 0 and 1", s.name, s.v))
		}
	}
	if m.bad == 1 {
		errs = append(errs, errors.New("bad rate 1: at least some requests must be good ones (a bad repeat payment needs a paid order)"))
	}
	return errors.Join(errs...)
}

// requestsPerCheckout is how many requests a checkout journey sends, on average.
func (m mix) requestsPerCheckout() float64 { return 1 + m.pay + m.lookup }

// badPick is the chance that a new journey is a bad request, such that bad requests come to
// m.bad of all requests: x/(x + (1-x)·k) = b solves to x = b·k/(1 - b + b·k).
func (m mix) badPick() float64 {
	k := m.requestsPerCheckout()
	return m.bad * k / (1 - m.bad + m.bad*k)
}

// expectedErrorRatio is the share of responses >= 400 this mix causes when the shop fails
// payments at paymentFailureRate and never runs out of stock.
func (m mix) expectedErrorRatio(paymentFailureRate float64) float64 {
	return m.bad + (1-m.bad)*m.pay*paymentFailureRate/m.requestsPerCheckout()
}

// step is one request of a journey.
type step int

const (
	stepCreate     step = iota // POST /order, 1 to 3 distinct items, quantity 1 to 3 each
	stepPay                    // POST /payment/pay for the journey's order
	stepLookup                 // GET /order/{id}
	stepBadJSON                // POST /order with a body cut short: 400 invalid_request
	stepUnknownSKU             // POST /order with a SKU the shop does not sell: 400 unknown_sku
	stepPayAgain               // POST /payment/pay for an order already paid: 409 already_paid
)

// String names the step in the summary's request counts and in span attributes.
func (s step) String() string {
	switch s {
	case stepCreate:
		return "create_order"
	case stepPay:
		return "pay"
	case stepLookup:
		return "get_order"
	case stepBadJSON:
		return "bad_json"
	case stepUnknownSKU:
		return "unknown_sku"
	case stepPayAgain:
		return "pay_again"
	}
	return fmt.Sprintf("step(%d)", int(s))
}

// weighted picks from a few choices by weight.
type weighted[T any] struct {
	choices []T
	weights []float64
}

func (w weighted[T]) pick(rng *rand.Rand) T {
	var total float64
	for _, x := range w.weights {
		total += x
	}
	r := rng.Float64() * total
	for i, x := range w.weights {
		if r < x {
			return w.choices[i]
		}
		r -= x
	}
	return w.choices[len(w.choices)-1]
}

// skus are the shop's catalogue, weighted roughly by shelf size (restocked every 15 s:
// STICKER-PACK 500, TEE-BLK-M 200, MUG-OTEL 150, HOODIE-GRY-L 80, LIMITED-PIN 5), so that
// shelves last at the default rate, except the limited pin, which sells out now and then.
var skus = weighted[string]{
	choices: []string{"STICKER-PACK", "TEE-BLK-M", "MUG-OTEL", "HOODIE-GRY-L", "LIMITED-PIN"},
	weights: []float64{55, 21, 15, 6, 3},
}

// Most orders are one line of one item, as in real shops: 1.5 lines of 1.45 items on average.
var (
	linesPerOrder = weighted[int]{choices: []int{1, 2, 3}, weights: []float64{60, 30, 10}}
	quantities    = weighted[int]{choices: []int{1, 2, 3}, weights: []float64{65, 25, 10}}
	payMethods    = weighted[string]{choices: []string{"card", "paypal", "wallet"}, weights: []float64{70, 20, 10}}
)

// badSteps are the kinds of bad request, equally likely.
var badSteps = []step{stepBadJSON, stepUnknownSKU, stepPayAgain}

type line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// randomItems picks 1 to 3 distinct SKUs by weight, each with a quantity of 1 to 3.
func randomItems(rng *rand.Rand) []line {
	n := linesPerOrder.pick(rng)
	left := weighted[string]{
		choices: append([]string(nil), skus.choices...),
		weights: append([]float64(nil), skus.weights...),
	}
	items := make([]line, 0, n)
	for range n {
		i := weighted[int]{choices: indexes(len(left.choices)), weights: left.weights}.pick(rng)
		items = append(items, line{SKU: left.choices[i], Quantity: quantities.pick(rng)})
		left.choices = append(left.choices[:i:i], left.choices[i+1:]...)
		left.weights = append(left.weights[:i:i], left.weights[i+1:]...)
	}
	return items
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
